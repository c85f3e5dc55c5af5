"""Export to TFLite and verification on the LiteRT runtime."""

from kdtf.export.package import export_for_android, model_card
from kdtf.export.litert import evaluate, keras_latency, latency, load_interpreter, predict
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
    "to_tflite",
    "save_tflite",
    "list_ops",
    "check_builtin_ops",
    "weight_sparsity",
    "TFLiteOpError",
    "load_interpreter",
    "predict",
    "evaluate",
    "latency",
    "keras_latency",
    "export_for_android",
    "model_card",
]
