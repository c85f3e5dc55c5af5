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

from kdtf.io import captured_stderr  # noqa: E402

# TensorFlow writes a few lines to file descriptor 2 while it loads (oneDNN, CUDA stubs,
# absl) and when it first looks for devices, before any logging setting applies; they
# are harmless and would stand before a kdtf error message. They are kept aside, and shown only if the import fails.
with captured_stderr() as _startup:
    try:
        import tensorflow as tf  # noqa: E402
        import tf_keras as keras  # noqa: E402

        tf.config.list_physical_devices()  # device discovery prints its own lines (cuInit on a CPU machine)
    except BaseException:
        _failed = True
    else:
        _failed = False
if _failed:
    sys.stderr.write(_startup["text"])
    import tensorflow as tf  # noqa: E402,F811  (raises again, with the real error)

__all__ = ["keras", "tf", "is_keras3_model", "require_keras_model"]


def is_keras3_model(obj):
    """Returns True when ``obj`` is a model of the standalone Keras 3 package (told by its
    classes' module, so Keras 3 is never imported to answer)."""
    return not isinstance(obj, keras.Model) and any(
        cls.__name__ == "Model" and cls.__module__.startswith("keras.src.") for cls in type(obj).__mro__
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
            "kdtf uses for pruning and quantization, only wraps Keras 2 models: convert it "
            "with `kdtf.from_keras3(model)` (the Distiller, compress, export and fine_tune "
            "do that themselves)."
        )
    raise ValueError(
        f"Expected `{argument}` to be a tf_keras Model (Sequential or Functional). "
        f"Received: {argument}={obj!r} of type {type(obj).__name__}"
    )
