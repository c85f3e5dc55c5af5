"""Walking the layer graph of a Sequential or Functional model, and rebuilding it.

Low-rank factorization and filter pruning both visit every layer call once, inputs
first: :func:`walk` propagates any values (new Keras tensors, channel labels) through the
graph; :func:`rebuild` uses it to make a new Functional model whose layers are built by a
callback (a clone, a smaller copy, two layers in place of one).
"""

from kdtf._keras import keras, tf
from kdtf.compress.layers import require_graph_model

__all__ = ["walk", "rebuild", "clone_layer"]


def walk(model, inputs, call):
    """Propagates values through the layer graph of ``model``, inputs first.

    Args:
        model: a built Sequential or Functional model, each layer called once.
        inputs: one value per model input.
        call: ``call(node, values) -> outputs``, with ``values`` the list of values of
            the node's input tensors (``node.keras_inputs`` order); ``outputs`` is one
            value or a list, in the order of the node's output tensors.

    Returns:
        The list of values of ``model.outputs``.
    """
    require_graph_model(model)
    if not model.built or not getattr(model, "_nodes_by_depth", None):
        raise ValueError(
            f"Expected a built model with an Input. Received: model '{model.name}' without "
            "a known input shape; build it first (keras.Input(...) or model.build(shape))."
        )
    values = {str(id(t)): v for t, v in zip(model.inputs, inputs)}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            if len(node.layer._inbound_nodes) > 1:
                raise ValueError(
                    f"Layer '{node.layer.name}' is shared (called more than once); the model "
                    "cannot be rebuilt layer by layer. Give each call its own layer."
                )
            outputs = call(node, [values[key] for key in node.flat_input_ids])
            flat = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for key, value in zip(node.flat_output_ids, flat):
                values[key] = value
    return [values[str(id(t))] for t in model.outputs]


def _call_arguments(node, tensors):
    # the node's own call arguments (constants, kwargs such as training=) with each Keras
    # input replaced by the new tensor at the same position
    by_id = {}
    for key, tensor in zip(node.flat_input_ids, tensors):
        by_id.setdefault(key, []).append(tensor)
    return node.map_arguments(by_id)


def rebuild(model, apply, name=None):
    """A new Functional model with the graph of ``model`` and layers made by ``apply``.

    Args:
        model: a built Sequential or Functional model, each layer called once.
        apply: ``apply(layer, args, kwargs) -> outputs``: calls the replacement of
            ``layer`` (e.g. :func:`clone_layer`) on the new inputs, with the call
            arguments of the original call.
        name: name of the new model (default: the old one).
    """
    inputs = [
        keras.Input(batch_shape=t.shape, dtype=t.dtype, name=input_name)
        for t, input_name in zip(model.inputs, model.input_names)
    ]
    outputs = walk(model, inputs, lambda node, tensors: apply(node.layer, *_call_arguments(node, tensors)))
    outputs = tf.nest.flatten(outputs)
    return keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=name or model.name)


def clone_layer(layer, args, kwargs, config=None, weights=None):
    """Calls a new layer built from ``config`` (default: ``layer``'s) on ``args`` and sets
    ``weights`` (default: ``layer``'s). Returns the outputs."""
    clone = layer.__class__.from_config(config if config is not None else layer.get_config())
    outputs = clone(*args, **kwargs)
    clone.set_weights(weights if weights is not None else layer.get_weights())
    return outputs
