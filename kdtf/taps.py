"""Intermediate outputs of Functional and Sequential models, by layer name.

``tap(model, ["conv2"])`` returns a model with the same inputs whose outputs are
``[model output, conv2 output]``; it shares every weight with ``model``, so training
through it trains ``model``. Users never rewrite their models.
"""

from kdtf._keras import keras

__all__ = ["tap", "layer_names"]


def layer_names(model):
    """Names of the layers that can be tapped."""
    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def tap(model, names, output=None, argument="model"):
    """A multi-output view: ``[output or model.outputs[0]] + [layer outputs for names]``.

    Raises:
        ValueError: naming an unknown layer and listing the available names.
    """
    unknown = [n for n in names if n not in [layer.name for layer in model.layers]]
    if unknown:
        raise ValueError(
            f"Layer(s) {unknown} not found in {argument} '{model.name}'. Available layers: "
            f"{layer_names(model)}"
        )
    main = output if output is not None else model.outputs[0]
    return keras.Model(model.inputs, [main] + [model.get_layer(n).output for n in names], name=f"{model.name}_taps")
