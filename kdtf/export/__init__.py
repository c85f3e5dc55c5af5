"""Export to TFLite and verification on the LiteRT runtime."""

from kdtf.export.litert import (
    evaluate,
    keras_latency,
    latency,
    load_interpreter,
    predict,
)
from kdtf.export.package import export_for_android, model_card
from kdtf.export.tflite import (
    MODES,
    TFLiteOpError,
    check_builtin_ops,
    list_ops,
    save_tflite,
    to_tflite,
    weight_sparsity,
)

__all__ = [
    "MODES",
    "TFLiteOpError",
    "check_builtin_ops",
    "evaluate",
    "export_for_android",
    "keras_latency",
    "latency",
    "list_ops",
    "load_interpreter",
    "model_card",
    "predict",
    "save_tflite",
    "to_tflite",
    "weight_sparsity",
]
