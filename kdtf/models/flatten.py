"""Nested models inlined: ``Sequential([MobileNetV2(include_top=False), pooling, Dense])``
becomes one flat Functional model whose layers are the backbone's layers and the head's.

TF-MOT wraps only a model's own layers, so a nested backbone would be pruned or
quantized at its head alone; taps name only top-level layers. The flat model shares
every layer (and so every weight) with the nested one and computes the same function.
"""

from kdtf._keras import keras, tf

__all__ = ["flatten", "has_nested_models"]


def has_nested_models(model):
    """True when a layer of ``model`` is itself a model with weights."""
    return any(isinstance(layer, keras.Model) and layer.weights for layer in model.layers)


def _expects_training(layer):
    spec = getattr(layer, "_call_spec", None)
    return bool(spec and spec.expects_training_arg)


def _inline(model, inputs, training=None):
    """Runs ``model``'s graph on ``inputs`` layer by layer (nested models recursively),
    as tf_keras's ``Functional._run_internal_graph`` does. A ``training=`` fixed on a
    nested model's call (a frozen backbone called with ``training=False``) is passed on to
    each of its layers."""
    inputs = tf.nest.flatten(inputs)
    tensors = {str(id(x)): [y] * model._tensor_usage_count[str(id(x))] for x, y in zip(model.inputs, inputs)}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or any(t not in tensors for t in node.flat_input_ids):
                continue
            args, kwargs = node.map_arguments(tensors)
            if training is not None and _expects_training(node.layer):
                kwargs = dict(kwargs, training=training)
            if isinstance(node.layer, keras.Model) and getattr(node.layer, "_is_graph_network", False):
                outputs = _inline(node.layer, args[0] if len(args) == 1 else args, kwargs.get("training", training))
            else:
                outputs = node.layer(*args, **kwargs)
            for x_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                tensors[x_id] = [y] * model._tensor_usage_count[x_id]
    outputs = [tensors[str(id(x))].pop() for x in model.outputs]
    return outputs[0] if len(outputs) == 1 else outputs


def flatten(model):
    """A flat Functional model sharing ``model``'s layers, with every nested Sequential or
    Functional model inlined. A model without nested models is returned as is.

    Raises:
        ValueError: naming a nested subclassed model, which has no graph to inline.
    """
    if not has_nested_models(model):
        return model
    subclassed = [layer.name for layer in model.layers if isinstance(layer, keras.Model) and not getattr(layer, "_is_graph_network", False)]
    if subclassed:
        raise ValueError(
            f"Model '{model.name}' nests subclassed model(s) {subclassed}, which cannot be inlined; rebuild them "
            "as Sequential or Functional models."
        )
    inputs = [keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x.name.split(":")[0]) for x in model.inputs]
    outputs = _inline(model, inputs)
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=model.name)
