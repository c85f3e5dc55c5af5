"""Intermediate outputs of Functional and Sequential models, by layer name.

``tap(model, ["conv2"])`` returns a model with the same inputs whose outputs are
``[model output, conv2 output]``; it shares every weight with ``model``, so training
through it trains ``model``. Users never rewrite their models. A layer wrapped by TF-MOT
for pruning, clustering or quantization-aware training keeps answering to its own name
(``conv2`` finds ``prune_low_magnitude_conv2``), so the same distillation terms reach a
model through every compression step.

``logits_view(model)`` is the same kind of view for a model that ends in softmax: it
outputs the logits before it.
"""

from kdtf._keras import keras

__all__ = ["tap", "layer_names", "find_layer", "output_in", "logits_view", "WRAPPER_PREFIXES"]

WRAPPER_PREFIXES = ("prune_low_magnitude_", "cluster_", "quant_")


def layer_names(model):
    """Names of the layers that can be tapped."""
    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def find_layer(model, name):
    """The layer called ``name``, or the TF-MOT wrapper around it; ``None`` if neither."""
    by_name = {layer.name: layer for layer in model.layers}
    for candidate in (name,) + tuple(prefix + name for prefix in WRAPPER_PREFIXES):
        if candidate in by_name:
            return by_name[candidate]
    return None


def tap(model, names, output=None, argument="model"):
    """A multi-output view: ``[output or model.outputs[0]] + [layer outputs for names]``.

    Raises:
        ValueError: naming an unknown layer and listing the available names.
    """
    layers = [find_layer(model, n) for n in names]
    unknown = [n for n, layer in zip(names, layers) if layer is None]
    if unknown:
        raise ValueError(
            f"Layer(s) {unknown} not found in {argument} '{model.name}'. Available layers: "
            f"{layer_names(model)}"
        )
    main = output if output is not None else model.outputs[0]
    return keras.Model(model.inputs, [main] + [output_in(model, layer) for layer in layers], name=f"{model.name}_taps")


def output_in(model, layer):
    """``layer``'s output in ``model``'s own graph. A layer that TF-MOT's cloning left
    unwrapped (a Softmax, an Add) is called in the original model and in the clone, so
    ``layer.output`` (its first call) may belong to another model's graph."""
    nodes = getattr(model, "_network_nodes", ())
    for index in range(len(layer._inbound_nodes)) if len(layer._inbound_nodes) > 1 else ():
        if f"{layer.name}_ib-{index}" in nodes:
            return layer.get_output_at(index)
    return layer.output


def _output_layer(model, argument):
    if not model.built or not getattr(model, "outputs", None):
        raise ValueError(
            f"`{argument}` ({model.name}) is not built: give it an input shape "
            "(keras.Input or `input_shape=` on its first layer) before distilling."
        )
    if len(model.outputs) != 1:
        raise ValueError(
            f"`{argument}` ({model.name}) has {len(model.outputs)} outputs; the Distiller "
            "expects a single logits output. Build a single-output view, e.g. "
            "keras.Model(model.inputs, model.outputs[0])."
        )
    return model.outputs[0]._keras_history.layer


def _is_softmax(activation):
    return activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax"


def logits_view(model, argument="model", copy_dense=True):
    """Returns a model that outputs logits, given one that may end in softmax.

    * A final ``Softmax`` layer or ``Activation("softmax")``: the returned model shares
      every weight with ``model`` and outputs that layer's input.
    * A final layer with ``activation="softmax"`` (e.g. ``Dense``): with
      ``copy_dense=True`` the returned model ends in a linear copy of that layer holding
      the same weights (fine for a frozen teacher); otherwise a ValueError says how to
      rebuild the model.
    * Otherwise ``model`` itself is returned.
    """
    layer = _output_layer(model, argument)
    if isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and _is_softmax(layer.activation)
    ):
        return keras.Model(model.inputs, layer.input, name=f"{model.name}_logits")
    if _is_softmax(getattr(layer, "activation", None)):
        if not copy_dense:
            raise ValueError(
                f"`{argument}` ends in layer '{layer.name}' with activation='softmax', but "
                "distillation trains on logits. Build the student with a linear last layer "
                "(activation=None), and add softmax after training if your app needs "
                "probabilities."
            )
        config = dict(layer.get_config(), activation="linear", name=f"{layer.name}_logits")
        linear = layer.__class__.from_config(config)
        logits = linear(layer.input)
        linear.set_weights(layer.get_weights())
        return keras.Model(model.inputs, logits, name=f"{model.name}_logits")
    return model
