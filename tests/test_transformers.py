"""ViT and token-id Transformers: shapes, taps, block mapping, QAT/pruning under TF-MOT,
builtin-only int8 TFLite and its agreement with Keras on LiteRT, a text model through the
Distiller on tfds mock data."""

import numpy as np
import pytest

from kdtf import compress, export, keras
from kdtf.models import vit
from kdtf.taps import tap

RNG = np.random.default_rng(3)


def small_vit(pooling="mean", seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    options = {"patch_size": 7, "dim": 16, "depth": 2, "heads": 2, "mlp_dim": 32, "pooling": pooling}
    options.update(kwargs)
    return vit.vit_classifier((28, 28, 1), 10, **options)


def images(n, shape=(28, 28, 1)):
    return RNG.random((n,) + shape, dtype=np.float32)


def test_presets_have_the_documented_sizes_and_a_7x7_token_grid():
    teacher, student = vit.vit_teacher(), vit.vit_student()
    assert 300_000 <= teacher.count_params() <= 320_000
    assert 40_000 <= student.count_params() <= 43_000
    assert teacher.get_layer("patch_tokens").output_shape == (None, 49, 96)
    assert student.get_layer("patch_tokens").output_shape == (None, 49, 48)
    assert vit.preset_patch_size((28, 28, 1)) == (4, 4) and vit.preset_patch_size((224, 160, 3)) == (32, 23)


@pytest.mark.parametrize("shape", [(32, 32, 3), (20, 36, 1), (224, 224, 3)])
def test_presets_work_at_other_image_sizes_by_padding_to_the_patch_grid(shape):
    model = vit.vit_student(shape, 5)
    assert model.get_layer("patch_tokens").output_shape == (None, 49, 48)
    assert model(images(2, shape)).shape == (2, 5)


@pytest.mark.parametrize("pooling, tokens", [("mean", 16), ("cls", 17)])
def test_taps_return_attention_weights_and_hidden_states_of_every_block(pooling, tokens):
    model = small_vit(pooling)
    attention, hidden = vit.block_layer_names(model, "attention"), vit.block_layer_names(model, "hidden")
    assert attention == ["block0_attention_scores", "block1_attention_scores"]
    assert hidden == ["block0_output", "block1_output"]
    logits, *outs = tap(model, attention + hidden)(images(3))
    assert logits.shape == (3, 10)
    for a in outs[:2]:
        assert a.shape == (3, 2, tokens, tokens)
        np.testing.assert_allclose(np.sum(a, -1), 1.0, rtol=1e-5)
    for h in outs[2:]:
        assert h.shape == (3, tokens, 16)


@pytest.mark.slow
def test_block_layer_names_sorts_numerically_and_names_the_fix_for_other_models():
    model = small_vit(depth=11)
    assert vit.block_layer_names(model, "hidden")[9:] == ["block9_output", "block10_output"]
    cnn = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="cnn")
    with pytest.raises(ValueError, match="'cnn' has no layer named block<i>_attention_scores.*kdtf.models.vit"):
        vit.block_layer_names(cnn)
    with pytest.raises(ValueError, match="kind='keys'"):
        vit.block_layer_names(model, "keys")


@pytest.mark.parametrize("student, teacher", [(2, 4), (3, 4), (4, 4), (1, 6), (4, 2), (3, 12)])
def test_uniform_block_mapping_is_ceil_of_the_proportional_depth_minus_one(student, teacher):
    expected = [int(np.ceil((i + 1) * teacher / student)) - 1 for i in range(student)]
    assert vit.uniform_block_mapping(student, teacher) == expected
    assert expected[-1] == teacher - 1


def test_block_pairs_map_student_blocks_to_teacher_blocks_uniformly():
    student, teacher = small_vit(depth=2), small_vit(depth=4, seed=1)
    assert vit.block_pairs(student, teacher, "hidden") == [("block0_output", "block1_output"), ("block1_output", "block3_output")]
    assert vit.block_pairs(student, teacher)[1] == ("block1_attention_scores", "block3_attention_scores")


def test_models_reject_bad_sizes_with_the_argument_named():
    with pytest.raises(ValueError, match="dim=30, heads=4"):
        vit.vit_classifier((28, 28, 1), 10, patch_size=7, dim=30, depth=1, heads=4, mlp_dim=8)
    with pytest.raises(ValueError, match="pooling='max'"):
        small_vit("max")
    with pytest.raises(ValueError, match="vocab_size=0"):
        vit.text_classifier(0, 8, 2)


@pytest.mark.slow
def test_quantize_wraps_every_transformer_layer():
    quantized = compress.quantize(small_vit("cls"))
    assert compress.unsupported_layers(small_vit("cls")) == []
    wrapped = {layer.layer.name for layer in quantized.layers if hasattr(layer, "quantize_config")}
    assert {"block0_norm1", "block0_attention_scores", "block0_attention_logits", "block1_mlp_gelu", "class_token", "final_norm"} <= wrapped
    with pytest.raises(ValueError, match="quantization-aware Transformer 'vit' needs representative_data"):
        export.to_tflite(quantized, "int8")


def _litert_agreement(flatbuffer, model, x):
    lite, reference = export.predict(flatbuffer, x), model.predict(x, verbose=0)
    cosine = np.sum(lite * reference, 1) / (np.linalg.norm(lite, axis=1) * np.linalg.norm(reference, axis=1))
    return float(np.mean(lite.argmax(1) == reference.argmax(1))), float(np.mean(cosine))


@pytest.mark.slow
def test_untrained_vit_exports_builtin_only_in_float32_and_int8_ptq():
    model, x = small_vit("cls", depth=1), images(32)
    for mode in ("float32", "int8"):
        flatbuffer = export.to_tflite(model, mode, representative_data=[x])
        ops = export.check_builtin_ops(flatbuffer)
        assert {"BATCH_MATMUL", "SOFTMAX", "FULLY_CONNECTED", "GELU"} <= set(ops)
        agreement, cosine = _litert_agreement(flatbuffer, model, x)
        assert agreement >= 0.9 and cosine > 0.98, (mode, agreement, cosine)


def _float_ops(flatbuffer):
    """Ops of the int8 model that compute in float (anything but (DE)QUANTIZE at the ends)."""
    interpreter = export.load_interpreter(flatbuffer)
    tensors = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    return sorted({
        op["op_name"] for op in interpreter._get_ops_details()
        if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE") and any(tensors[i] == np.float32 for i in op["outputs"])
    })


@pytest.mark.slow
def test_vit_student_qat_to_int8_tflite_is_builtin_only_fully_integer_and_agrees_with_keras(tmp_path):
    from kdtf.saving import load_model, save_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)  # its own data, whatever ran before it on this worker
    x, y = rng.random((256, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 256)
    x[np.arange(256), y * 2, :, 0] = 1.0  # a learnable signal: the label's row is bright
    quantized = compress.quantize(small_vit("mean", depth=1))
    quantized.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    quantized.fit(x, y, batch_size=32, epochs=10, verbose=0)  # clear margins: int8 rounding must not flip near-ties
    reloaded = load_model(save_model(quantized, str(tmp_path / "qat.keras")))
    np.testing.assert_allclose(reloaded.predict(x[:8], verbose=0), quantized.predict(x[:8], verbose=0), atol=1e-5)
    flatbuffer = export.to_tflite(reloaded, "int8", representative_data=[x[:128]])
    assert not any(op.startswith(("FLEX", "CUSTOM")) for op in export.check_builtin_ops(flatbuffer))
    assert _float_ops(flatbuffer) == []
    agreement, cosine = _litert_agreement(flatbuffer, reloaded, x)
    assert agreement >= 0.85 and cosine > 0.98, (agreement, cosine)  # a tiny ViT: some of its 256 outputs are near-ties


@pytest.mark.slow
def test_attention_and_mlp_projections_prune_and_keep_their_zeros_through_pqat():
    model = small_vit(depth=1)
    pruned = compress.prune(model, 0.5, schedule="constant", frequency=1)
    wrapped = {layer.name for layer in pruned.layers if type(layer).__name__ == "PruneLowMagnitude"}
    for part in ("query", "key", "value", "attention_output", "mlp_dense1", "mlp_dense2"):
        assert f"prune_low_magnitude_block0_{part}" in wrapped
    x, y = images(64), RNG.integers(0, 10, 64)
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=compress.pruning_callbacks())
    stripped = compress.strip_pruning(pruned)
    per_layer, _ = compress.kernel_sparsity(stripped)
    assert per_layer["block0_query"] == pytest.approx(0.5, abs=0.01)
    pqat = compress.quantize(stripped, preserve="sparsity")
    pqat.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pqat.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert compress.kernel_sparsity(pqat)[0]["quant_block0_query"] == pytest.approx(0.5, abs=0.01)


def _mock_text(num_examples):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=num_examples):
        ds = tfds.load("imdb_reviews", split="train", as_supervised=True)
    texts, labels = zip(*[(t.decode(), int(label)) for t, label in ds.as_numpy_iterator()])
    return np.array(texts), np.array(labels, np.int32)


@pytest.mark.slow
def test_token_id_transformer_distils_on_mock_imdb_and_exports_int8_with_integer_inputs():
    from kdtf import Distiller

    texts, labels = _mock_text(64)
    vectorize = keras.layers.TextVectorization(max_tokens=64, output_sequence_length=16, split="character")
    vectorize.adapt(texts)  # offline: a character vocabulary of the mock reviews
    ids = vectorize(texts).numpy().astype(np.int32)
    vocab = len(vectorize.get_vocabulary())
    keras.utils.set_random_seed(0)
    teacher = vit.text_classifier(vocab, 16, 2, dim=32, depth=2, heads=4, mlp_dim=64, name="text_teacher")
    student = vit.text_classifier(vocab, 16, 2, dim=16, depth=1, heads=2, mlp_dim=32, name="text_student")
    before = [w.copy() for w in student.get_weights()]
    distiller = Distiller(student, teacher, distill="kd")
    distiller.compile(keras.optimizers.Adam(1e-3))
    history = distiller.fit(ids, labels, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(a, b) for a, b in zip(before, student.get_weights()))
    quantized = compress.quantize(student)
    flatbuffer = export.to_tflite(quantized, "int8", representative_data=[ids])
    export.check_builtin_ops(flatbuffer)
    assert export.load_interpreter(flatbuffer).get_input_details()[0]["dtype"] == np.int32
    agreement, _ = _litert_agreement(flatbuffer, quantized, ids)
    assert agreement >= 0.9


def test_attention_and_hidden_terms_map_blocks_and_match_numpy_references():
    import kdtf

    from reference_losses_transformer import attention_matrix, hidden_state

    keras.utils.set_random_seed(0)
    teacher = vit.vit_classifier((16, 16, 1), 3, patch_size=4, dim=16, depth=4, heads=2, mlp_dim=16, name="t")
    student = vit.vit_classifier((16, 16, 1), 3, patch_size=4, dim=8, depth=2, heads=2, mlp_dim=8, name="s")
    x = np.random.default_rng(0).random((6, 16, 16, 1), dtype=np.float32)
    y = np.arange(6) % 3
    distiller = kdtf.Distiller(student, teacher, distill="kd,attention:2,hidden:0.5")
    attention, hidden = distiller.terms[1], distiller.terms[2]
    assert attention.pairs == [("block0_attention_scores", "block1_attention_scores"),
                               ("block1_attention_scores", "block3_attention_scores")]
    assert hidden.teacher_layers == ["block1_output", "block3_output"] and len(hidden.adapter) == 2
    distiller.compile("adam")
    logs = distiller.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)
    s_taps = tap(student, ["block0_attention_scores", "block1_attention_scores", "block0_output", "block1_output"])(x)
    t_taps = tap(teacher, ["block1_attention_scores", "block3_attention_scores", "block1_output", "block3_output"])(x)
    s_att, t_att = [a.numpy() for a in s_taps[1:3]], [a.numpy() for a in t_taps[1:3]]
    expected_attention = np.mean([attention_matrix(t, s).mean() for t, s in zip(t_att, s_att)])
    np.testing.assert_allclose(logs["attention_loss"], expected_attention, rtol=1e-4)
    s_hidden = [hidden.adapter[i](s_taps[3 + i]).numpy() for i in range(2)]
    expected_hidden = np.mean([hidden_state(t.numpy(), s).mean() for t, s in zip(t_taps[3:], s_hidden)])
    np.testing.assert_allclose(logs["hidden_loss"], expected_hidden, rtol=1e-4)


@pytest.mark.slow
def test_block_terms_train_student_and_adapters_and_refuse_a_cnn_teacher():
    import kdtf

    keras.utils.set_random_seed(1)
    teacher = vit.vit_classifier((16, 16, 1), 3, patch_size=4, dim=16, depth=2, heads=2, mlp_dim=16, name="t")
    student = vit.vit_classifier((16, 16, 1), 3, patch_size=4, dim=8, depth=1, heads=2, mlp_dim=8, name="s")
    x = np.random.default_rng(1).random((16, 16, 16, 1), dtype=np.float32)
    distiller = kdtf.Distiller(student, teacher, distill="kd,attention,hidden")
    distiller.compile(keras.optimizers.Adam(1e-2))
    adapter = distiller.terms[2].adapter[0].kernel.numpy().copy()
    history = distiller.fit(x, np.arange(16) % 3, epochs=1, verbose=0)
    assert np.isfinite(history.history["attention_loss"][0]) and np.isfinite(history.history["hidden_loss"][0])
    assert not np.array_equal(adapter, distiller.terms[2].adapter[0].kernel.numpy())
    cnn = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="block"):
        kdtf.Distiller(student, cnn, distill="kd,attention")


@pytest.mark.slow
def test_progressive_distillation_trains_the_blocks_stage_by_stage():
    from kdtf.progressive import progressive_distillation, progressive_specs

    keras.utils.set_random_seed(2)
    teacher = vit.vit_classifier((16, 16, 1), 3, patch_size=4, dim=16, depth=2, heads=2, mlp_dim=16, name="t")
    student = vit.vit_classifier((16, 16, 1), 3, patch_size=4, dim=8, depth=2, heads=2, mlp_dim=8, name="s")
    specs = progressive_specs(student, teacher)
    assert [len(spec.terms) for spec in specs] == [2, 4] and all(spec.alpha == 0 for spec in specs)
    assert {t.student_layer for t in specs[0].terms} == {"block0_output", "block0_attention_scores"}
    x = np.random.default_rng(2).random((16, 16, 16, 1), dtype=np.float32)
    weights = {layer.name: [w.copy() for w in layer.get_weights()] for layer in student.layers}
    changed = lambda name: any(not np.array_equal(a, b) for a, b in zip(weights[name], student.get_layer(name).get_weights()))
    from kdtf.training import as_dataset, fit

    data = as_dataset((x, np.zeros(16, np.int32)), batch_size=8)
    fit(student, data, epochs=1, teacher=teacher, spec=specs[0])  # stage 1 alone: block 0 only
    assert changed("block0_query") and not changed("block1_query") and not changed("logits")
    histories = progressive_distillation(student, teacher, data, epochs_per_block=1)
    assert len(histories) == 2 and all(np.isfinite(h["loss"][0]) for h in histories)
    assert changed("block1_query") and not changed("logits")


@pytest.mark.slow
def test_attention_and_hidden_terms_keep_teaching_through_pruning_and_qat():
    """The default command's chain: the compression steps fine-tune under the same terms,
    whose taps must find the blocks inside the pruned clone (layers TF-MOT left unwrapped
    are called in both graphs) and under QAT's ``quant_`` names."""
    from kdtf.spec import DistillSpec
    from kdtf.taps import tap
    from kdtf.training import FineTuner

    teacher, student = small_vit(seed=1, depth=4), small_vit(seed=2, dim=32, mlp_dim=64)  # 32x32 kernels: pruned
    x, y = images(32), np.arange(32) % 10
    tuner = FineTuner(teacher, (x, y), spec=DistillSpec(terms="kd,attention,hidden"), batch_size=16)
    compressed, record = compress.Recipe.parse("prune,qat").run(student, tuner, epochs=1)
    assert [result.step for result in record] == ["prune 75%", "qat"]
    assert vit.block_layer_names(compressed, "attention") == ["block0_attention_scores", "block1_attention_scores"]
    view = tap(compressed, vit.block_layer_names(compressed, "hidden"))
    assert [tuple(o.shape) for o in view(x[:2])] == [(2, 10), (2, 16, 32), (2, 16, 32)]
