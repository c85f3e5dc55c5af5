"""kdtf.export.ptq: litert-quantizer post-training quantization, per-op errors, mixed precision."""

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

import kdtf
from kdtf import export, keras
from kdtf._keras import tf
from kdtf.data import load

TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
KERNELS = ("student/conv1/Conv2D", "student/conv2/Conv2D", "student/fc1/MatMul", "student/logits/MatMul")


def tensor_types(flatbuffer):
    """``{tensor name: type}`` read straight from the flatbuffer schema."""
    graph = schema.Model.GetRootAsModel(flatbuffer, 0).Subgraphs(0)
    return {graph.Tensors(i).Name().decode(): TYPE_NAMES[graph.Tensors(i).Type()] for i in range(graph.TensorsLength())}


@pytest.fixture(scope="module")
def trained():
    """student_cnn trained briefly on mnist5k, its float .tflite and data."""
    data = load("mnist5k", seed=0)
    keras.utils.set_random_seed(0)
    model = kdtf.models.build("student_cnn", (28, 28, 1), 10)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train[:2000], data.y_train[:2000], epochs=1, batch_size=64, verbose=0)
    return {
        "model": model,
        "data": data,
        "float": export.to_tflite(model, "float32"),
        "calibration": data.x_train[:256],
        "x": data.x_test[:500],
        "y": data.y_test[:500],
    }


@pytest.mark.slow
def test_int4w_file_holds_int4_kernels_and_runs_on_litert(trained):
    quantized = export.post_training_quantize(trained["float"], "int4w")
    types = tensor_types(quantized)
    assert [types[name] for name in KERNELS] == ["INT4"] * 4
    assert "INT8" not in types.values() and len(quantized) < 0.2 * len(trained["float"])
    interpreter = Interpreter(model_content=quantized)  # LiteRT loads and runs it
    interpreter.allocate_tensors()
    reference = export.predict(trained["float"], trained["x"]).argmax(-1)
    outputs = export.predict(quantized, trained["x"])
    assert np.all(np.isfinite(outputs)) and np.mean(outputs.argmax(-1) == reference) > 0.85


def test_blockwise_int4_on_dense_layers_whose_inputs_divide_into_blocks(trained):
    quantized = export.post_training_quantize(trained["float"], "int4w", block_size=32, keep_float=["CONV_2D", "fc1"])
    types = tensor_types(quantized)
    assert types["student/logits/MatMul"] == "INT4"
    assert [types[name] for name in KERNELS[:3]] == ["FLOAT32"] * 3
    assert np.all(np.isfinite(export.predict(quantized, trained["x"][:32])))


@pytest.mark.parametrize(("mode", "io_type"), [("int8", np.int8), ("int16x8", np.int16)])
def test_static_modes_run_and_agree_with_float(trained, mode, io_type):
    quantized = export.post_training_quantize(trained["float"], mode, trained["calibration"])
    assert Interpreter(model_content=quantized).get_input_details()[0]["dtype"] == io_type
    assert all(tensor_types(quantized)[name] == "INT8" for name in KERNELS)
    reference = export.predict(trained["float"], trained["x"])
    result = export.evaluate(quantized, trained["x"], trained["y"])
    agreement = np.mean(export.predict(quantized, trained["x"]).argmax(-1) == reference.argmax(-1))
    assert agreement > 0.97
    assert abs(result["accuracy"] - np.mean(reference.argmax(-1) == trained["y"])) < 0.02


def _reference_output(flatbuffer, x):
    # the reference kernels, as layer_errors runs them (XNNPACK rounds int8 differently)
    interpreter = Interpreter(model_content=flatbuffer, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = interpreter.get_signature_runner()
    name = next(iter(runner.get_input_details()))
    detail = runner.get_input_details()[name]
    if detail["dtype"] != np.float32:
        scale, zero = detail["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(detail["dtype"])
    output = next(iter(runner(**{name: x}).values()))
    out = next(iter(runner.get_output_details().values()))
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        output = (output.astype(np.float32) - zero) * scale
    return output


def test_layer_report_lists_every_quantized_op_with_errors_checked_against_numpy(trained):
    quantized = export.post_training_quantize(trained["float"], "int8", trained["calibration"])
    samples = trained["x"][:64]
    rows = export.layer_errors(trained["float"], quantized, samples)
    graph = schema.Model.GetRootAsModel(trained["float"], 0).Subgraphs(0)
    assert [row["op"] for row in rows] == list(range(graph.OperatorsLength()))
    assert all(row["quantized"] and row["activations"] == "INT8" and row["snr_db"] is not None for row in rows)
    assert {row["weights"] for row in rows if row["type"] in ("CONV_2D", "FULLY_CONNECTED")} == {"INT8"}
    logits = rows[-1]
    want, got = _reference_output(trained["float"], samples), _reference_output(quantized, samples)
    snr_db = 10 * np.log10(np.mean(want**2) / np.mean((got - want) ** 2))
    cosine = np.sum(want * got) / np.linalg.norm(want) / np.linalg.norm(got)
    assert logits["snr_db"] == pytest.approx(snr_db, abs=0.05)
    assert logits["cosine"] == pytest.approx(cosine, abs=1e-5)
    assert logits["mse"] == pytest.approx(np.mean((got - want) ** 2), rel=1e-3)
    table = export.layer_error_table(rows, limit=3)
    assert table.count("\n") == 2 + 3 and f"| {min(rows, key=lambda r: r['snr_db'])['op']} |" in table.splitlines()[2]


def test_mixed_precision_keeps_the_noisiest_ops_float_until_within_max_drop(trained):
    # agreement with float as the metric, no drop allowed: int8 alone disagrees on a few
    result = export.mixed_precision(trained["float"], trained["x"], None, 0.0, representative_data=trained["calibration"])
    assert result.steps[0]["accuracy"] < 1.0 and result.float_accuracy == 1.0
    assert len(result.kept) >= 1 and len(result.steps) == len(result.kept) + 1
    rows = {row["op"]: row for row in export.layer_errors(trained["float"], result.model, trained["x"][:64])}
    assert all(rows[kept["op"]]["activations"] == "FLOAT32" for kept in result.kept)
    assert result.accuracy == result.steps[-1]["accuracy"] and result.reached == (result.accuracy == 1.0)
    loose = export.mixed_precision(trained["float"], trained["x"], trained["y"], 0.5, representative_data=trained["calibration"])
    assert loose.kept == [] and loose.reached


def test_int16_fallback_gives_the_chosen_ops_int16_activations(trained):
    result = export.mixed_precision(trained["float"], trained["x"][:200], None, 0.0, fallback="int16",
                                    representative_data=trained["calibration"])
    types = tensor_types(result.model)
    assert result.kept and all(types[kept["tensor"]] == "INT16" for kept in result.kept)


def test_representative_data_as_array_dataset_or_batches_calibrates_the_same(trained):
    x = trained["calibration"][:64]
    from_array = export.post_training_quantize(trained["float"], "int8", x)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(64, np.int32))).batch(16)
    assert export.post_training_quantize(trained["float"], "int8", dataset) == from_array
    assert export.post_training_quantize(trained["float"], "int8", (x[i : i + 10] for i in range(0, 64, 10))) == from_array


def test_quantized_file_ships_through_export_for_android(trained, tmp_path):
    quantized = export.post_training_quantize(trained["float"], "int4w")
    path = tmp_path / "app" / "student_int4w.tflite"
    card = export.export_for_android(trained["model"], str(path), splits=trained["data"], mode="litert-quantizer int4w", flatbuffer=quantized)
    assert path.read_bytes() == quantized and (tmp_path / "app" / "labels.txt").exists()
    assert card["mode"] == "litert-quantizer int4w" and card["metrics_on_litert"]["agreement"] > 0.85


def test_report_md_shows_the_per_op_table_when_the_report_holds_one(trained):
    import json
    import os

    from kdtf.report import render_markdown

    with open(os.path.join(os.path.dirname(__file__), "fixtures", "report.json")) as f:
        report = json.load(f)
    assert "Per-op error" not in render_markdown(report)
    quantized = export.post_training_quantize(trained["float"], "int8", trained["calibration"])
    report["layer_errors"] = export.layer_errors(trained["float"], quantized, trained["x"][:32])
    json.dumps(report)  # report.json can hold it
    text = render_markdown(report)
    assert "## Per-op error of the quantized file against float" in text
    assert export.layer_error_table(report["layer_errors"], limit=10) in text


def _depthwise_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.DepthwiseConv2D(3, name="dw"), keras.layers.Conv2D(4, 1, name="pw"),
        keras.layers.GlobalAveragePooling2D(name="gap"), keras.layers.Dense(2, name="logits"),
    ], name="dwnet")


def test_int4_on_an_op_without_an_int4_kernel_is_one_line_naming_it():
    flatbuffer = export.to_tflite(_depthwise_model(), "float32")
    with pytest.raises(ValueError) as error:
        export.post_training_quantize(flatbuffer, "int4w")
    message = str(error.value)
    assert "op 0 DEPTHWISE_CONV_2D 'dwnet/dw/depthwise1'" in message and "keep_float=[0]" in message
    assert "\n" not in message
    quantized = export.post_training_quantize(flatbuffer, "int4w", keep_float=["DEPTHWISE_CONV_2D"])
    types = tensor_types(quantized)
    assert types["dwnet/pw/Conv2D"] == "INT4" and "INT4" not in {types[n] for n in types if "/dw/" in n}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda fb, x: export.post_training_quantize(fb, "int3", x), r"Expected a post-training quantization mode in int8, int16x8, int4w\. Received: mode='int3'"),
        (lambda fb, x: export.post_training_quantize(fb, "int8", np.zeros((4, 32, 32, 3))),
         r"Expected representative_data of examples shaped \(28, 28, 1\).*Received: an array of shape \(4, 32, 32, 3\)"),
        (lambda fb, x: export.post_training_quantize(fb, "int8"), "Received: representative_data=None"),
        (lambda fb, x: export.post_training_quantize(fb, "int8", x, keep_float=["fc9"]), r"layer names in keep_float\. Received: 'fc9'"),
        (lambda fb, x: export.post_training_quantize(fb, "int8", x, block_size=32), r"Received: block_size=32 with mode='int8'"),
        (lambda fb, x: export.post_training_quantize(b"not a model", "int8", x), "Expected TFLite flatbuffer bytes"),
        (lambda fb, x: export.layer_errors(fb, fb, x[:, :27]), r"Received: an array of shape \(256, 27, 28, 1\)"),
        (lambda fb, x: export.mixed_precision(fb, x, np.zeros(3), 0.01), r"Expected one label per sample \(256\)\. Received: 3 labels"),
        (lambda fb, x: export.mixed_precision(fb, x, None, -0.1), r"Expected max_drop in \[0, 1\)"),
        (lambda fb, x: export.mixed_precision(fb, x, None, 0.1, mode="int4w", fallback="int16"), "fallback 'float', or 'int16' with mode 'int8'"),
    ],
    ids=["mode", "data-shape", "no-data", "unknown-op", "block-size", "not-tflite", "samples-shape", "labels", "max-drop", "fallback"],
)
def test_bad_input_gives_one_line(trained, call, message):
    with pytest.raises(ValueError, match=message) as error:
        call(trained["float"], trained["calibration"])
    assert "\n" not in str(error.value)
