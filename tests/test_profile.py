"""kdtf.export.profile: XNNPACK coverage, per-op time from truncated graphs, the float32
against int8 check the export stage records, and fixed-batch export."""

import json
import os

import numpy as np
import pytest

from kdtf import export, keras
from kdtf.export import profile
from kdtf.report import render_markdown

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "report.json")


def _cnn(filters=8, size=16, name="cnn"):
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((size, size, 3)),
        keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(4, name="logits"),
    ], name=name)


def _softmax_mlp():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, name="fc1"), keras.layers.Softmax(name="softmax"),
                             keras.layers.Dense(4, name="fc2")], name="mlp")


def test_delegation_finds_every_op_of_a_float_cnn_in_one_xnnpack_partition():
    result = profile.delegation(export.to_tflite(_cnn(), "float32"))
    assert result["delegated_ops"] == result["total_ops"] == len(result["ops"]) > 0
    assert result["partitions"] == 1 and result["builtin"] == {}
    assert [op["op"] for op in result["ops"]][0] == "CONV_2D"


def test_delegation_names_the_int8_op_xnnpack_leaves_on_builtin_kernels():
    model = _softmax_mlp()
    calibration = np.random.default_rng(0).random((16, 8), dtype=np.float32)
    result = profile.delegation(export.to_tflite(model, "int8", representative_data=calibration))
    assert result["builtin"] == {"SOFTMAX": 1}  # XNNPACK has no int8 softmax
    assert result["delegated"] == {"FULLY_CONNECTED": 2}
    assert result["partitions"] == 2  # one partition on each side of the softmax


def test_truncated_graph_outputs_the_intermediate_tensor():
    from ai_edge_litert.tools import flatbuffer_utils

    model = _cnn()
    data = export.to_tflite(model, "float32")
    x = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)
    first = profile._prefix(flatbuffer_utils.convert_bytearray_to_object(bytearray(data)), 0)
    conv = keras.Model(model.inputs, model.get_layer("conv").output)
    np.testing.assert_allclose(export.predict(first, x), conv(x).numpy(), atol=1e-5)


def test_op_times_give_every_op_a_time_and_the_big_convolution_the_largest():
    model = keras.Sequential([keras.Input((32, 32, 16)), keras.layers.Conv2D(64, 3, padding="same", name="conv"),
                              keras.layers.GlobalAveragePooling2D(name="pool"), keras.layers.Dense(4, name="logits")])
    data = export.to_tflite(model, "float32")
    times = profile.op_times(data, runs=30, rounds=3, method="truncated")
    assert [t["op"] for t in times] == [name for name, *_ in export.operators(data)]
    totals = profile.op_time_totals(times, profile.delegation(data))
    assert totals[0]["op"] == "CONV_2D" and totals[0]["delegated"] == 1 and totals[0]["share"] > 0.5
    assert sum(row["count"] for row in totals) == len(times)
    profiled = profile.op_time_totals(profile.op_times(data, runs=30))  # LiteRT's profiler: XNNPACK's operators
    assert profiled[0]["op"].startswith("Convolution (NHWC, F32)") and profiled[0]["kernel"] == "XNNPACK"


def test_latency_profile_flags_a_slower_quantized_file_with_the_reason():
    fast, slow = export.to_tflite(_cnn(4, 8), "float32"), export.to_tflite(_cnn(64, 48), "float32")
    result = profile.latency_profile(fast, slow, runs=30, op_runs=5, alternatives={"dynamic": slow})
    assert set(result["latency_ms"]) == {"1", "2"} and result["int8_over_float"]["1"] > 1.5
    assert result["int8_slower"] and "Convolution (NHWC, F32)" in result["reason"]  # LiteRT profiler names
    assert result["recommended"] == "float32" and set(result["alternatives_ms"]["1"]) == {"dynamic"}
    assert profile.slower_line(result).startswith("WARNING: the int8 export is")
    assert profile.slower_line(profile.latency_profile(slow, fast, runs=30, op_runs=5)) is None
    json.dumps(result)  # goes into report.json as is


def test_report_renders_the_latency_profile_and_the_flag():
    fast, slow = export.to_tflite(_cnn(4, 8), "float32"), export.to_tflite(_cnn(64, 48), "float32")
    with open(FIXTURE) as f:
        report = json.load(f)
    report["latency_profile"] = profile.latency_profile(fast, slow, runs=30, op_runs=5)
    text = render_markdown(report)
    assert "## Where the time goes: float32 against int8 (LiteRT)" in text
    assert "| int8 |" in text and "**int8 is slower than float32 here**" in text
    assert "Fastest export on this machine (lowest ratio to float32 at the worse thread count): **float32**" in text


@pytest.mark.slow
def test_fixed_batch_export_of_a_vit_has_no_shape_ops_and_predicts_like_keras():
    from kdtf.models.vit import vit_classifier

    keras.utils.set_random_seed(0)
    model = vit_classifier((8, 8, 1), 3, patch_size=4, dim=8, depth=1, heads=2, mlp_dim=8)
    x = np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)
    dynamic, fixed = export.to_tflite(model, "float32"), export.to_tflite(model, "float32", batch_size=1)
    assert set(profile.SHAPE_OPS) & set(export.list_ops(dynamic))
    assert not set(profile.SHAPE_OPS) & set(export.list_ops(fixed))
    cover = profile.delegation(fixed)
    assert cover["delegated_ops"] == cover["total_ops"] and cover["partitions"] == 1
    np.testing.assert_allclose(export.predict(fixed, x), model(x).numpy(), atol=1e-4)  # 5 examples, one at a time
    with pytest.raises(ValueError, match="Expected batch_size None or an integer >= 1"):
        export.to_tflite(model, "float32", batch_size=0)


def test_fixed_batch_file_predicts_any_number_of_examples_like_keras():
    model = _cnn()
    x = np.random.default_rng(0).random((5, 16, 16, 3), dtype=np.float32)
    fixed = export.to_tflite(model, "float32", batch_size=2)  # 5 examples: 2 + 2 + 1 padded
    assert list(export.load_interpreter(fixed).get_input_details()[0]["shape_signature"]) == [2, 16, 16, 3]
    np.testing.assert_allclose(export.predict(fixed, x), model(x).numpy(), atol=1e-5)


def _attention(seq=4, dim=8):
    keras.utils.set_random_seed(0)
    x = keras.Input((seq, dim))
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="attention")(x, x)
    y = keras.layers.LayerNormalization(name="norm")(y + x)
    return keras.Model(x, keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(y)), name="attention_net")


def test_symmetric_matmul_operands_get_zero_point_zero_and_xnnpack_takes_the_int8_batch_matmul():
    from kdtf.export import symmetric

    model = _attention()
    calibration = np.random.default_rng(0).normal(size=(16, 4, 8)).astype(np.float32)
    plain = export.to_tflite(model, "int8", representative_data=calibration, batch_size=1)
    assert any(zero != 0 for zero in symmetric.matmul_rhs_zero_points(plain))  # the converter calibrates asymmetrically
    assert profile.delegation(plain)["builtin"].get("BATCH_MATMUL") == 2
    fixed, changed = symmetric.symmetric_matmul_operands(plain)
    assert changed >= 1 and symmetric.matmul_rhs_zero_points(fixed) == [0, 0]
    assert "BATCH_MATMUL" not in profile.delegation(fixed)["builtin"]
    x = calibration[:8]
    reference = model(x).numpy()
    error = np.abs(export.predict(fixed, x) - reference).max()
    assert error < 2 * np.abs(export.predict(plain, x) - reference).max() + 0.05  # one bit less on K and V, no more


@pytest.mark.slow
def test_xnnpack_int8_keeps_only_what_xnnpack_cannot_run_in_int8_in_float():
    from kdtf.export import symmetric

    model = _attention()
    calibration = np.random.default_rng(0).normal(size=(16, 4, 8)).astype(np.float32)
    quantized, kept = symmetric.xnnpack_int8(export.to_tflite(model, "float32", batch_size=1), calibration)
    cover = profile.delegation(quantized)
    assert cover["builtin"] == {} and cover["partitions"] == 1
    assert "SOFTMAX" in kept and "FULLY_CONNECTED" not in kept and "BATCH_MATMUL" not in kept
    assert symmetric.matmul_rhs_zero_points(quantized) == [0, 0]


def test_litert_op_profiler_names_kernels_and_never_reports_a_negative_time():
    from kdtf.export import op_profile

    if not op_profile.profiler_available():
        pytest.skip("this ai-edge-litert has no profiler in its C API")
    model = _softmax_mlp()
    calibration = np.random.default_rng(0).random((16, 8), dtype=np.float32)
    rows = op_profile.profile_ops(export.to_tflite(model, "int8", representative_data=calibration), runs=30)
    assert [row["kernel"] for row in rows].count("builtin") == 1  # the int8 SOFTMAX
    assert any(row["op"] == "SOFTMAX" and row["kernel"] == "builtin" for row in rows)
    assert any(row["op"].startswith("Fully Connected") and row["kernel"] == "XNNPACK" for row in rows)
    assert all(0 <= row["p10_ms"] <= row["ms"] <= row["p90_ms"] and row["runs"] == 30 for row in rows)
    truncated = profile.op_times(export.to_tflite(model, "float32"), runs=12, rounds=3, method="truncated")
    assert all(row["ms"] >= 0 and row["p10_ms"] >= 0 for row in truncated)


@pytest.mark.slow
def test_profile_export_times_the_xnnpack_int8_export_of_an_attention_model():
    model = _attention()
    calibration = np.random.default_rng(0).normal(size=(16, 4, 8)).astype(np.float32)
    int8 = export.to_tflite(model, "int8", representative_data=calibration)
    result = profile.profile_export(model, int8, runs=20, op_runs=20, representative_data=calibration)
    assert set(result["alternatives_ms"]["1"]) == {"dynamic", "int8 xnnpack (batch 1)"}
    assert result["recommended"] in {"float32", "int8", "dynamic", "int8 xnnpack (batch 1)"}
