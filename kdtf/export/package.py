"""What ships to the app: a verified ``.tflite`` with ``labels.txt`` and ``model_card.json``."""

import json
import os

from kdtf.export.flatbuffer import check_builtin_ops, weight_sparsity
from kdtf.export.litert import evaluate, load_interpreter
from kdtf.export.tflite import save_tflite, to_tflite
from kdtf.io import gzip_size, write_text

__all__ = ["export_for_android", "model_card"]


def _io(detail):
    scale, zero_point = detail["quantization"]
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape"]],
        "dtype": detail["dtype"].__name__,
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def model_card(path, *, mode, class_names, normalization, source_stages=(), metrics=None):
    """The facts an app developer needs to feed and read the model, from the file itself."""
    interpreter = load_interpreter(path)
    return {
        "file": os.path.basename(path),
        "mode": mode,
        "input": _io(interpreter.get_input_details()[0]),
        "output": _io(interpreter.get_output_details()[0]),
        "normalization": normalization,
        "how_to_feed": (
            "apply the normalization to raw pixels; for integer inputs then quantize: "
            "q = round(x / scale + zero_point), clipped to the dtype; read integer outputs "
            "as (q - zero_point) * scale"
        ),
        "class_names": list(class_names),
        "ops": check_builtin_ops(path),
        "size_bytes": os.path.getsize(path),
        "gzip_bytes": gzip_size(path),
        "weight_sparsity": weight_sparsity(path)[1],
        "source_stages": list(source_stages),
        "metrics_on_litert": metrics or {},
    }


def export_for_android(
    model,
    path,
    *,
    splits,
    mode="int8",
    input_type=None,
    output_type=None,
    source_stages=(),
    representative_examples=256,
    flatbuffer=None,
):
    """Converts, checks, writes and verifies one model for Android.

    The flatbuffer is checked for builtin-only ops before anything is written; the
    ``.tflite``, ``labels.txt`` and ``model_card.json`` beside it (one shipped model per
    folder) are each written atomically, the model card last, with the accuracy
    measured on LiteRT.

    Args:
        model: tf_keras model (pruning/clustering wrappers are stripped).
        path: destination ``.tflite`` path.
        splits: :class:`kdtf.data.Splits`; its training split feeds int8 calibration and
            its test split the LiteRT evaluation.
        mode: see :func:`kdtf.export.to_tflite`.
        input_type, output_type: integer or float I/O for the integer modes.
        source_stages: names of the stages that produced ``model``, for the card.
        representative_examples: training examples used to calibrate.
        flatbuffer: an already converted model (e.g. from :func:`kdtf.export.quantize`)
            to check, write and verify instead of converting ``model``, which then only
            serves as the Keras reference for the agreement; ``mode`` names it in the card.

    Returns:
        The model card dict.
    """
    if not os.fspath(path).endswith(".tflite"):
        raise ValueError(f"Expected a path ending in .tflite. Received: path={path!r}")
    if flatbuffer is None:
        representative = [splits.x_train[:representative_examples]]
        flatbuffer = to_tflite(model, mode, representative_data=representative, input_type=input_type, output_type=output_type)
    check_builtin_ops(flatbuffer)
    save_tflite(flatbuffer, path)
    metrics = evaluate(path, splits.x_test, splits.y_test, keras_model=model)
    folder = os.path.dirname(os.path.abspath(path))
    write_text(os.path.join(folder, "labels.txt"), "\n".join(splits.class_names) + "\n")
    card = model_card(
        path, mode=mode, class_names=splits.class_names, normalization=splits.normalization,
        source_stages=source_stages, metrics=dict(metrics, split="test", examples=len(splits.x_test)),
    )
    write_text(os.path.join(folder, "model_card.json"), json.dumps(card, indent=2) + "\n")
    return card
