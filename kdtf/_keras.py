"""The single place where kdtf chooses its Keras.

kdtf builds every model with ``tf_keras`` (Keras 2): TensorFlow Model Optimization
(pruning, quantization-aware training, clustering) only wraps Keras 2 models and
rejects Keras 3 ones. ``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first
imported so that ``tf.keras`` inside TF-MOT and keras-cv resolves to the same Keras;
``kdtf/__init__.py`` sets it before importing this module.

Everyone inside kdtf imports Keras as ``from kdtf._keras import keras``.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf", "is_keras3_model", "require_keras_model"]


def is_keras3_model(obj):
    """Returns True when ``obj`` is a model of the standalone Keras 3 package."""
    keras3 = sys.modules.get("keras")
    if keras3 is None or keras3 is keras:
        return False
    model_cls = getattr(keras3, "Model", None)
    return isinstance(model_cls, type) and isinstance(obj, model_cls) and not isinstance(
        obj, keras.Model
    )


def require_keras_model(obj, argument):
    """Raises a ValueError unless ``obj`` is a tf_keras model.

    Args:
        obj: the value received.
        argument: the argument's name, used in the message.
    """
    if isinstance(obj, keras.Model):
        return obj
    if is_keras3_model(obj):
        raise ValueError(
            f"Expected `{argument}` to be a tf_keras (Keras 2) model, but received a "
            f"Keras 3 model ({type(obj).__module__}.{type(obj).__name__}). TF-MOT, which "
            "kdtf uses for pruning and quantization, only wraps Keras 2 models: build it "
            "with `from kdtf import keras` (or `import tf_keras as keras`), or set "
            "TF_USE_LEGACY_KERAS=1 before importing TensorFlow."
        )
    raise ValueError(
        f"Expected `{argument}` to be a tf_keras Model (Sequential or Functional). "
        f"Received: {argument}={obj!r} of type {type(obj).__name__}"
    )
