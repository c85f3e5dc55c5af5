"""Export to TFLite and verification on the LiteRT runtime."""

from kdtf.export.entropy import entropy_bound_bits, entropy_coded_size
from kdtf.export.flatbuffer import (
    TFLiteOpError,
    check_builtin_ops,
    list_ops,
    operators,
    sparse_tensors,
    weight_sparsity,
    weight_tensors,
)
from kdtf.export.litert import evaluate, keras_latency, latency, latency_side_by_side, load_interpreter, predict
from kdtf.export.macs import count_macs
from kdtf.export.package import export_for_android, model_card
from kdtf.export.ptq import (
    PTQ_MODES,
    MixedPrecision,
    layer_error_table,
    layer_errors,
    mixed_precision,
    post_training_quantize,
)
from kdtf.export.sparse import check_xnnpack_sparse, to_sparse_tflite, xnnpack_sparse_layers
from kdtf.export.tflite import MODES, save_tflite, to_tflite

__all__ = [
    "MODES",
    "to_tflite",
    "to_sparse_tflite",
    "sparse_tensors",
    "check_xnnpack_sparse",
    "xnnpack_sparse_layers",
    "save_tflite",
    "list_ops",
    "operators",
    "count_macs",
    "check_builtin_ops",
    "weight_sparsity",
    "weight_tensors",
    "entropy_coded_size",
    "entropy_bound_bits",
    "TFLiteOpError",
    "load_interpreter",
    "predict",
    "evaluate",
    "latency",
    "latency_side_by_side",
    "keras_latency",
    "export_for_android",
    "model_card",
    "PTQ_MODES",
    "post_training_quantize",
    "layer_errors",
    "layer_error_table",
    "mixed_precision",
    "MixedPrecision",
]

quantize = post_training_quantize  # the name before 0.2 (kdtf.compress.quantize is quantization-aware training)
