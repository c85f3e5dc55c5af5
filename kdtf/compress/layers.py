"""Layer choice and kernel inspection shared by the compression steps."""

import logging

import numpy as np

from kdtf._keras import keras
from kdtf.keras3 import as_tf_keras
from kdtf.models.flatten import flatten, has_nested_models

__all__ = [
    "PRUNABLE_TYPES",
    "require_graph_model",
    "prunable_layers",
    "select_layers",
    "clone_with_weights",
    "wrap_layers",
    "kernel_sparsity",
    "unique_weights",
    "kernels",
]

logger = logging.getLogger(__name__)
PRUNABLE_TYPES = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)


def require_graph_model(model, argument="model"):
    """``model`` as TF-MOT can wrap it: a Keras 3 model converted to tf_keras, nested
    models (a backbone inside a Sequential) inlined so every layer is reachable; a
    subclassed model is refused with the fix."""
    model = as_tf_keras(model, argument)
    if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
        raise ValueError(
            f"`{argument}` ({model.name}, a subclassed {type(model).__name__}) cannot be "
            "wrapped by TF-MOT: rebuild it as a Sequential or Functional model."
        )
    if has_nested_models(model):
        nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
        model = flatten(model)
        logger.info("inlined the nested model(s) %s of '%s': compression reaches all %d layers", nested, model.name, len(model.layers))
    return model


def prunable_layers(model, min_weights=0):
    """Names of the Conv2D/Dense/DepthwiseConv2D layers, with at least ``min_weights`` kernel weights."""
    return [
        layer.name
        for layer in model.layers
        if isinstance(layer, PRUNABLE_TYPES) and layer.trainable and _kernel_size(layer) >= min_weights
    ]


def _kernel_size(layer):
    kernel = getattr(layer, "depthwise_kernel", None) if isinstance(layer, keras.layers.DepthwiseConv2D) else layer.kernel
    return int(np.prod(kernel.shape))


def select_layers(model, layers, skip, min_weights):
    """Names of the weight layers to compress: ``layers`` if given (validated), else every
    prunable layer with at least ``min_weights`` kernel weights; minus ``skip``."""
    names = [layer.name for layer in model.layers]
    for argument, given in (("layers", layers), ("skip", skip)):
        unknown = sorted(set(given or ()) - set(names))
        if unknown:
            raise ValueError(
                f"Unknown layer name(s) in `{argument}`: {unknown}. Layers of "
                f"'{model.name}': {names}"
            )
    if layers is not None:
        bad = [n for n in layers if not isinstance(model.get_layer(n), PRUNABLE_TYPES)]
        if bad:
            raise ValueError(
                f"Layer(s) {bad} in `layers` cannot be pruned; prunable types are Conv2D, "
                f"Dense and DepthwiseConv2D. Prunable layers: {prunable_layers(model)}"
            )
        chosen = set(layers)
    else:
        # DepthwiseConv2D only when named: few weights each, and TF-MOT's PQAT does not
        # preserve their zeros ("weights sparsity preserve is disabled" in 0.8.1).
        chosen = {
            n for n in prunable_layers(model, min_weights)
            if not isinstance(model.get_layer(n), keras.layers.DepthwiseConv2D)
        }
    return chosen - set(skip or ())


def clone_with_weights(model):
    """A copy of ``model`` with its own layers and the same weights."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def wrap_layers(model, chosen, wrapper):
    """A new model in which each layer named in ``chosen`` is replaced by ``wrapper(layer)``.

    The layers of a private copy are wrapped, so training the result never changes the
    model passed in (TF-MOT's wrappers share the layer they wrap).
    """
    copy = clone_with_weights(model)
    return keras.models.clone_model(copy, clone_function=lambda layer: wrapper(layer) if layer.name in chosen else layer)


def kernels(model):
    """``{layer_name: kernel array}`` for every Conv/Dense kernel, unwrapping TF-MOT wrappers."""
    found = {}
    for layer in _leaf_layers(model):
        kernel = _kernel_of(layer)
        if kernel is not None:
            found[layer.name] = kernel
    return found


def kernel_sparsity(model):
    """Fraction of exactly-zero weights per Conv/Dense kernel, and over all of them.

    Returns:
        ``(per_layer, overall)``: a dict ``{layer_name: fraction}`` and the fraction over
        every kernel weight of the model.
    """
    found = kernels(model)
    per_layer = {name: float(np.mean(kernel == 0)) for name, kernel in found.items()}
    zeros = sum(int(np.sum(kernel == 0)) for kernel in found.values())
    total = sum(kernel.size for kernel in found.values())
    return per_layer, (zeros / total if total else 0.0)


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _kernel_of(layer):
    # Read the variable, not `layer.kernel`: QAT wrappers replace that attribute with a
    # fake-quantized tensor. Pruning and quantize wrappers name it ".../kernel:0".
    for weight in layer.weights:
        name = weight.name.split("/")[-1]
        if name in ("kernel:0", "depthwise_kernel:0"):
            return weight.numpy()
    return None


def unique_weights(model):
    """Number of distinct values in each Conv/Dense kernel (clustering leaves few).
    Measure a stripped model: clustering wrappers keep the original weights too."""
    return {name: int(np.unique(kernel).size) for name, kernel in kernels(model).items()}
