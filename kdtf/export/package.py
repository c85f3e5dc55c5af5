"""What ships to the app: a verified ``.tflite`` with ``labels.txt`` and ``model_card.json``."""

import json
import os

from kdtf.export.entropy import size_fields
from kdtf.export.flatbuffer import check_builtin_ops, weight_sparsity
from kdtf.export.litert import evaluate, load_interpreter
from kdtf.export.tflite import save_tflite, to_tflite
from kdtf.io import gzip_size, write_text

__all__ = ["export_for_android", "model_card", "OUTPUTS"]

EVALUATION_BATCH = 64  # LiteRT evaluation batch: the interpreter holds activations for the whole batch


def _io(name, detail):
    scale, zero_point = detail["quantization"]
    return {
        "name": name,
        "tensor": detail["name"],
        "shape": [int(d) for d in detail["shape"]],
        "dtype": detail["dtype"].__name__,
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


OUTPUTS = {
    "logits": "logits: softmax(output) gives the probability of each class in class_names (labels.txt) order",
    "embedding": "embedding: a float vector per input (an encoder); compare vectors by cosine similarity",
}


def model_card(path, *, mode, class_names, normalization, source_stages=(), metrics=None, output="logits"):
    """The facts an app developer needs to feed and read the model, from the file itself.

    ``input`` and ``output`` carry the signature names (``input``, ``logits``, stable
    whatever the Keras model was called; see :func:`kdtf.export.to_tflite`) and the
    tensor behind each; the output is logits, so ``softmax`` gives probabilities over
    ``class_names`` in that order."""
    interpreter = load_interpreter(path)
    signatures = interpreter.get_signature_list()
    key = "serving_default" if "serving_default" in signatures else next(iter(signatures), None)
    names = signatures[key] if key else {"inputs": ["input"], "outputs": ["logits"]}
    return {
        "file": os.path.basename(path),
        "mode": mode,
        "signature": key,
        "input": _io(names["inputs"][0], interpreter.get_input_details()[0]),
        "output": _io(names["outputs"][0], interpreter.get_output_details()[0]),
        "output_is": OUTPUTS[output],
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
        **size_fields(path),
        "weight_sparsity": weight_sparsity(path)[1],
        "source_stages": list(source_stages),
        "metrics_on_litert": metrics or {},
    }


def _representative(representative, splits, examples, seed):
    """Calibration inputs: the caller's (``to_tflite`` bounds them), else a bounded
    sample of the training split."""
    if representative is not None:
        return representative
    if splits is None:
        raise ValueError("Expected splits=... or representative=... to calibrate an integer model. Received: neither")
    return splits.sample("train", examples, seed=seed)[0]


def _evaluation(evaluation, splits):
    if evaluation is None:
        if splits is None:
            raise ValueError("Expected splits=... or evaluation=(x, y) / a dataset to verify the model on LiteRT. Received: neither")
        return splits.dataset("test", EVALUATION_BATCH), None
    if isinstance(evaluation, tuple) and len(evaluation) == 2:
        return evaluation
    return evaluation, None


def _card_facts(output, splits, class_names, normalization):
    """The class names (none for an embedding) and normalisation the card states."""
    if output not in OUTPUTS:
        raise ValueError(f"Expected output in {tuple(OUTPUTS)}. Received: output={output!r}")
    class_names = [] if output == "embedding" else class_names if class_names is not None else getattr(splits, "class_names", None)
    normalization = normalization if normalization is not None else getattr(splits, "normalization", None)
    if class_names is None or normalization is None:
        raise ValueError("Expected splits=... or class_names=... and normalization=... for the model card. Received: neither")
    return class_names, normalization


def export_for_android(
    model,
    path,
    *,
    splits=None,
    mode="int8",
    input_type=None,
    output_type=None,
    source_stages=(),
    representative_examples=256,
    representative_seed=0,
    representative=None,
    evaluation=None,
    class_names=None,
    normalization=None,
    flatbuffer=None,
    output="logits",
):
    """Converts, checks, writes and verifies one model for Android.

    The flatbuffer is checked for builtin-only ops before anything is written; the
    ``.tflite``, ``labels.txt`` and ``model_card.json`` beside it (one shipped model per
    folder) are each written atomically, the model card last, with the accuracy
    measured on LiteRT (streamed by batch).

    Args:
        model: tf_keras model (pruning/clustering wrappers are stripped).
        path: destination ``.tflite`` path.
        splits: :class:`kdtf.data.Splits`: a bounded sample of its training split
            calibrates int8, its test split is the LiteRT evaluation, its class names
            and normalisation go into the card (each replaceable by the arguments below).
        mode: see :func:`kdtf.export.to_tflite`.
        input_type, output_type: integer or float I/O for the integer modes.
        source_stages: names of the stages that produced ``model``, for the card.
        representative_examples: training examples used to calibrate.
        representative_seed: seed of that sample (``None``: the first examples).
        representative: calibration inputs instead of the sample: an array, a
            ``tf.data`` pipeline or an iterable of batches (see :func:`to_tflite`).
        evaluation: ``(x, y)`` arrays or a dataset of ``(x, y)`` batches instead of the
            test split.
        class_names, normalization: for the card, without ``splits``.
        flatbuffer: an already converted model (e.g. from :func:`kdtf.export.post_training_quantize`)
            to check, write and verify instead of converting ``model``, which then only
            serves as the Keras reference for the agreement; ``mode`` names it in the card.
        output: ``"logits"`` (a classifier: ``labels.txt`` and the accuracy on LiteRT)
            or ``"embedding"`` (an encoder: no labels; the caller measures it, e.g. by
            cosine agreement with Keras).

    Returns:
        The model card dict.
    """
    if not os.fspath(path).endswith(".tflite"):
        raise ValueError(f"Expected a path ending in .tflite. Received: path={path!r}")
    class_names, normalization = _card_facts(output, splits, class_names, normalization)
    if flatbuffer is None:
        integer = mode in ("int8", "int16x8")
        calibration = _representative(representative, splits, representative_examples, representative_seed) if integer else None
        flatbuffer = to_tflite(model, mode, representative_data=calibration, input_type=input_type, output_type=output_type,
                               max_examples=representative_examples)
    check_builtin_ops(flatbuffer)
    save_tflite(flatbuffer, path)
    folder = os.path.dirname(os.path.abspath(path))
    metrics = {}
    if output == "logits":
        metrics = evaluate(path, *_evaluation(evaluation, splits), keras_model=model)
        metrics["split"] = "test" if evaluation is None else "given"
        write_text(os.path.join(folder, "labels.txt"), "\n".join(class_names) + "\n")
    card = model_card(path, mode=mode, class_names=class_names, normalization=normalization,
                      source_stages=source_stages, metrics=metrics, output=output)
    write_text(os.path.join(folder, "model_card.json"), json.dumps(card, indent=2) + "\n")
    return card
