"""TFLite conversion, the Android op check, and LiteRT evaluation on tiny models."""

import numpy as np
import pytest
import tensorflow as tf

from kdtf import export, keras

from helpers import INPUT_SHAPE


@pytest.fixture
def trained(student, batch):
    x, y = batch
    student.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    student.fit(x, y, epochs=2, verbose=0)
    return student


# Tolerances on |tflite - keras| of the logits: float32 differs only by op order;
# float16 weights carry ~1e-3 relative error; int8 weights/activations ~1 % of the
# output range, which is about 1 for these logits.
@pytest.mark.parametrize("mode, tolerance", [("float32", 1e-5), ("float16", 1e-2), ("dynamic", 5e-2), ("int8", 0.15), ("int16x8", 0.05)])
def test_each_mode_loads_in_litert_and_agrees_with_keras(trained, batch, mode, tolerance):
    x, y = batch
    flatbuffer = export.to_tflite(trained, mode, representative_data=[x[:32]])
    result = export.evaluate(flatbuffer, x, y, keras_model=trained)
    assert result["max_abs_diff"] < tolerance
    want, got = np.asarray(trained(x, training=False), np.float64), export.predict(flatbuffer, x).astype(np.float64)
    noise = np.sum((got - want) ** 2)  # the output SNR against the Keras model, None where equal
    assert result["snr_db"] == (pytest.approx(10 * np.log10(np.sum(want**2) / noise), abs=0.01) if noise else None)
    assert result["agreement"] >= (1.0 if mode == "float32" else 0.85)


def test_int8_input_and_output_types_are_as_requested(trained, batch):
    x, _ = batch
    as_int8 = export.load_interpreter(export.to_tflite(trained, "int8", representative_data=[x[:32]]))
    assert as_int8.get_input_details()[0]["dtype"] == np.int8
    assert as_int8.get_output_details()[0]["dtype"] == np.int8
    as_float = export.load_interpreter(
        export.to_tflite(trained, "int8", representative_data=[x[:32]], input_type=tf.float32, output_type=tf.float32)
    )
    assert as_float.get_input_details()[0]["dtype"] == np.float32


def test_int8_without_representative_data_is_refused(trained):
    with pytest.raises(ValueError, match="mode='int8' needs representative_data"):
        export.to_tflite(trained, "int8")


def test_unknown_mode_is_refused(trained):
    with pytest.raises(ValueError, match="Unknown TFLite mode 'int4'"):
        export.to_tflite(trained, "int4")


def test_op_check_passes_builtin_model_and_flags_flex_op():
    inputs = keras.Input((4,))
    assert export.check_builtin_ops(export.to_tflite(keras.Model(inputs, keras.layers.Dense(3)(inputs)))) == ["FULLY_CONNECTED"]
    odd = keras.layers.Lambda(lambda t: tf.math.cumprod(t, axis=1), name="running_product")(inputs)
    flatbuffer = export.to_tflite(keras.Model(inputs, keras.layers.Dense(3)(odd)), allow_flex=True)
    assert "FLEX:Cumprod" in export.list_ops(flatbuffer)
    with pytest.raises(export.TFLiteOpError, match=r"Flex op Cumprod, producing .*running_product"):
        export.check_builtin_ops(flatbuffer)


def test_corrupt_or_missing_tflite_file_gives_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="TFLite file not found"):
        export.load_interpreter(str(tmp_path / "missing.tflite"))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="is not a TFLite flatbuffer"):
        export.list_ops(str(bad))
    with pytest.raises(ValueError, match="is not a TFLite flatbuffer"):
        export.load_interpreter(str(bad))


def test_weight_sparsity_reads_zeros_from_the_flatbuffer():
    inputs = keras.Input((64,))
    model = keras.Model(inputs, keras.layers.Dense(32, name="fc")(inputs))
    kernel = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    kernel[:, :24] = 0  # 75 % zeros
    model.get_layer("fc").set_weights([kernel, np.zeros(32, np.float32)])
    _, overall = export.weight_sparsity(export.to_tflite(model, "float32"))
    assert overall == pytest.approx(0.75, abs=1e-6)
    # int8 rounding turns a few tiny weights into zeros as well
    _, overall = export.weight_sparsity(export.to_tflite(model, "dynamic"))
    assert 0.75 <= overall < 0.76


def test_latency_reports_median_and_p90(trained):
    timing = export.latency(export.to_tflite(trained), num_threads=1, runs=20, warmup=2)
    assert 0 < timing["median_ms"] <= timing["p90_ms"]
    keras_timing = export.keras_latency(trained, INPUT_SHAPE, runs=5, warmup=1)
    assert keras_timing["median_ms"] > 0


def test_saved_tflite_is_written_atomically(tmp_path, trained):
    path = tmp_path / "m.tflite"
    export.save_tflite(export.to_tflite(trained), str(path))
    assert export.list_ops(str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["m.tflite"]


def test_a_model_the_converter_refuses_gives_one_line_naming_model_and_op():
    inputs = keras.Input((4,))
    odd = keras.layers.Lambda(tf.math.special.bessel_i0e, name="bessel")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(odd), name="odd_model")
    with pytest.raises(ValueError) as error:
        export.to_tflite(model)
    message = str(error.value)
    assert message.startswith("The TFLite converter refused 'odd_model' in mode 'float32'")
    assert "BesselI0e" in message and len(message.splitlines()) == 1


@pytest.mark.slow
def test_export_for_android_writes_model_labels_and_card(tmp_path, trained, batch):
    from kdtf.data import Splits

    x, y = batch
    splits = Splits("tiny", x, y, x, y, x, y, ["a", "b", "c", "d"], "x")
    card = export.export_for_android(trained, str(tmp_path / "m.tflite"), splits=splits, mode="int8", source_stages=["s"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "m.tflite", "model_card.json"]
    assert (tmp_path / "labels.txt").read_text().split() == ["a", "b", "c", "d"]
    assert card["input"]["dtype"] == "int8" and card["metrics_on_litert"]["agreement"] >= 0.85
    assert (card["signature"], card["input"]["name"], card["output"]["name"]) == ("serving_default", "input", "logits")
    assert card["output_is"].startswith("logits")
    with pytest.raises(ValueError, match="ending in .tflite"):
        export.export_for_android(trained, str(tmp_path / "m.bin"), splits=splits)


def test_export_for_android_of_an_encoder_writes_no_labels_and_says_embedding(tmp_path, student, batch):
    from kdtf.data import Splits

    x, y = batch
    splits = Splits("tiny", x, y, x, y, x, y, ["a", "b", "c", "d"], "x")
    card = export.export_for_android(student, str(tmp_path / "e.tflite"), splits=splits, mode="float32", output="embedding")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.tflite", "model_card.json"]
    assert card["output_is"].startswith("embedding") and card["metrics_on_litert"] == {} and card["class_names"] == []
    with pytest.raises(ValueError, match=r"Expected output in \('logits', 'embedding'\). Received: output='probabilities'"):
        export.export_for_android(student, str(tmp_path / "p.tflite"), splits=splits, output="probabilities")


def test_latency_side_by_side_times_every_model_in_turns(student):
    from kdtf import export

    flatbuffers = {"float": export.to_tflite(student), "dynamic": export.to_tflite(student, "dynamic")}
    timings = export.latency_side_by_side(flatbuffers, runs=20, rounds=4, warmup=2)
    assert set(timings) == {"float", "dynamic"}
    assert all(t["runs"] == 20 and 0 < t["median_ms"] <= t["p90_ms"] for t in timings.values())
