"""Keras -> TFLite conversion (reading the flatbuffer is :mod:`kdtf.export.flatbuffer`).

Every file has one signature, ``serving_default``, with the input ``input`` and the
output ``logits`` (or, for an encoder, its embedding under that name)."""


import numpy as np
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from kdtf._keras import keras, tf
from kdtf.export.samples import representative_samples
from kdtf.io import captured_stderr, write_bytes
from kdtf.keras3 import as_tf_keras

__all__ = ["MODES", "to_tflite", "save_tflite", "needs_calibration"]

MODES = ("float32", "float16", "dynamic", "int8", "int16x8")


def _strip_wrappers(model):
    """Pruning and clustering wrappers off (TF-MOT's own strip functions); QAT wrappers
    stay: the converter reads their ranges."""
    if pruning_wrapper.collect_prunable_layers(model):
        model = tfmot.sparsity.keras.strip_pruning(model)
    if any(isinstance(layer, cluster_wrapper.ClusterWeights) for layer in model.layers):
        model = tfmot.clustering.keras.strip_clustering(model)
    return model


def _is_quantized(model):
    return any(isinstance(layer, tfmot.quantization.keras.QuantizeWrapper) for layer in model.layers)


def to_tflite(
    model,
    mode="float32",
    *,
    representative_data=None,
    input_type=None,
    output_type=None,
    allow_flex=False,
    max_examples=500,
    batch_size=None,
):
    """Converts a tf_keras model to a TFLite flatbuffer.

    Args:
        model: tf_keras model (a Keras 3 model is converted first); pruning/clustering
            wrappers are stripped.
        mode: ``"float32"``, ``"float16"`` (float16 weights), ``"dynamic"`` (int8
            weights, float activations), ``"int8"`` (full integer) or ``"int16x8"``
            (int16 activations, int8 weights).
        representative_data: calibration inputs: an array of examples, a ``tf.data``
            pipeline or an iterable of batches (at most ``max_examples`` are used);
            required for ``int8``/``int16x8`` unless the model went through
            quantization-aware training.
        input_type, output_type: for ``int8``: ``tf.int8``, ``tf.uint8`` or ``tf.float32``
            (default int8); for ``int16x8``: ``tf.int16`` or ``tf.float32`` (default float).
            Integer inputs (token ids) keep their type whatever ``input_type`` says.
        allow_flex: allow SELECT_TF_OPS (not recommended for Android; see
            :func:`kdtf.export.check_builtin_ops`).
        max_examples: calibration examples used at most.
        batch_size: ``None`` keeps the batch dimension dynamic; an integer (1 for an app
            classifying one image at a time) fixes it, so the converter folds every shape
            into constants: a Transformer's Dense layers on token sequences and its
            LayerNormalization otherwise compute shapes at run time (SHAPE, FILL,
            GATHER, PACK, REDUCE_PROD, STRIDED_SLICE ops, float islands in an int8 graph).
            LiteRT then runs such a file one batch of that size at a time
            (:func:`kdtf.export.predict` does).

    Returns:
        The flatbuffer bytes.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown TFLite mode {mode!r}. Expected one of {', '.join(MODES)}.")
    model = _strip_wrappers(as_tf_keras(model, "model"))
    qat = _is_quantized(model)
    _require_calibration(model, mode, representative_data is not None, qat)
    converter = _converter(model, batch_size)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode != "float32" or qat:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    # Token ids (integer inputs) stay integer: only float inputs are quantized.
    input_dtype = model.inputs[0].dtype.as_numpy_dtype
    integer_inputs = not np.issubdtype(input_dtype, np.floating)
    if representative_data is not None and mode in ("int8", "int16x8"):
        samples = representative_samples(representative_data, tuple(model.input_shape[1:]), max_examples=max_examples,
                                         dtype=input_dtype)
        converter.representative_dataset = lambda: ([example[None]] for example in samples)
    if mode == "int8":
        # A QAT model carries its ranges; TFLITE_BUILTINS_INT8 would demand calibration
        # data anyway (TF 2.21 checks before it sees the fake-quant ops).
        if not qat:
            ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32 if integer_inputs else input_type or tf.int8
        converter.inference_output_type = output_type or tf.int8
    elif mode == "int16x8":
        ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        converter.inference_input_type = input_type or tf.float32
        converter.inference_output_type = output_type or tf.float32
    if allow_flex:
        ops = ops + [tf.lite.OpsSet.SELECT_TF_OPS]
    converter.target_spec.supported_ops = ops
    with captured_stderr() as log:
        try:
            return converter.convert()
        except Exception as error:  # the converter raises many types
            failure = error
    reason = _first_error_line(log["text"]) or _first_error_line(str(failure)) or type(failure).__name__
    raise ValueError(
        f"The TFLite converter refused '{model.name}' in mode {mode!r}: {reason}"
    ) from None


def _converter(model, batch_size=None):
    """A converter of ``model``'s call with a stable signature: one input named ``input``,
    one output named ``logits`` (the name Keras would give depends on how many models the
    process built, e.g. ``input_5``), so apps and model cards can rely on the names."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"Expected batch_size None or an integer >= 1. Received: batch_size={batch_size!r}")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        if batch_size is not None:
            raise ValueError(f"batch_size= needs a model with one input and one output; '{model.name}' has "
                             f"{len(model.inputs)} and {len(model.outputs)}. Leave batch_size=None.")
        return tf.lite.TFLiteConverter.from_keras_model(model)

    @tf.autograph.experimental.do_not_convert
    def serve(x):
        return {"logits": model(x, training=False)}

    spec = tf.TensorSpec((batch_size,) + tuple(model.input_shape[1:]), model.inputs[0].dtype, name="input")
    return tf.lite.TFLiteConverter.from_concrete_functions([tf.function(serve).get_concrete_function(spec)],
                                                          _variables_of(model))


def _variables_of(model):
    """What the converter saves beside the function (its SavedModel path): the model's
    variables and nothing else. Given the Keras model itself, TensorFlow walks and saves
    the model's whole object graph (every wrapper, quantizer, optimizer slot); for a
    quantization-aware MobileNetV2 that walk took 5x the rest of the conversion (64 s
    against 11 s of CPU), for a byte-identical flatbuffer."""
    holder = tf.Module()  # (a Keras model name such as "mobilenetv2_0.35_32" is no valid module name)
    holder.model_variables = list(model.variables)
    return holder


def needs_calibration(model):
    """True when a quantization-aware ``model`` still has tensors without a trained
    range, so its int8 export needs representative data: LayerNormalization's internal
    ops (mean, variance, rsqrt) and Dense layers on token sequences (TF-MOT
    fake-quantizes after the bias, the converter splits the matmul from the bias add)."""
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, keras.layers.LayerNormalization):
            return True
        if isinstance(inner, keras.layers.Dense) and len(inner.input_shape) > 2:
            return True
    return False


def _require_calibration(model, mode, calibrated, qat):
    """Raises unless an integer ``mode`` has the ranges it needs: representative data,
    or quantization-aware training that covered every tensor."""
    if mode not in ("int8", "int16x8") or calibrated:
        return
    if not qat:
        raise ValueError(
            f"mode={mode!r} needs representative_data (a few hundred training inputs) to "
            f"calibrate activation ranges of '{model.name}', or a quantization-aware "
            "trained model. Pass representative_data=..., or use mode='dynamic'."
        )
    if needs_calibration(model):
        raise ValueError(
            f"mode={mode!r} for the quantization-aware Transformer '{model.name}' needs "
            "representative_data (a few hundred training inputs): its LayerNormalization "
            "internals and the matmuls before each bias have no trained range, and would "
            "stay float. Pass representative_data=..."
        )


def _first_error_line(text):
    for line in text.splitlines():
        if "error:" in line:
            return line[line.index("error:") + len("error:"):].strip()[:300]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def save_tflite(flatbuffer, path):
    """Writes a flatbuffer atomically and returns ``path``."""
    return write_bytes(path, flatbuffer)
