"""Distiller with several terms, taps, adapters, several teachers, and no labels."""

import numpy as np
import pytest

from kdtf import Distiller, keras
from kdtf.spec import DistillSpec, TermSpec, parse_terms
from kdtf.taps import tap
from kdtf.terms import build_terms

import reference_losses as ref
from helpers import CLASSES, INPUT_SHAPE, tiny_cnn


def compiled(d):
    d.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    return d


def features(model, layer, x):
    """The output of ``layer`` in ``model`` on ``x`` (float64), through the public tap."""
    return tap(model, [layer]).predict(x, verbose=0)[1].astype(np.float64)


def logits(model, x):
    return model.predict(x, verbose=0).astype(np.float64)


def one_batch(distiller, x, y):
    """The logs of one evaluation batch holding all of ``x``."""
    return distiller.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)


def pooled(s, size):
    """Average-pools ``(b, h, w, c)`` maps to ``size x size`` (what match_spatial does)."""
    k = s.shape[1] // size
    return s.reshape(len(s), size, k, size, k, s.shape[-1]).mean(axis=(2, 4))


def test_spec_string_parses_weights_layers_and_teacher():
    terms = parse_terms("kd:1.0,fitnets:0.5@conv/conv,rkd_distance:2#1")
    assert [(t.loss, t.weight, t.student_layer, t.teacher_layer, t.teacher) for t in terms] == [
        ("kd", 1.0, None, None, 0), ("fitnets", 0.5, "conv", "conv", 0), ("rkd_distance", 2.0, None, None, 1)]


@pytest.mark.parametrize("spec, message", [
    ("kd:x", "Bad distillation term 'kd:x'"),
    ("kd:-1", "Expected the weight of 'kd' >= 0"),
    ("kd#x", "Bad distillation term 'kd#x'"),
    ([{"loss": "kd", "wieght": 1}], r"Unknown field\(s\) \['wieght'\]"),
])
def test_bad_term_strings_are_refused_by_the_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_terms(spec)


@pytest.mark.parametrize("spec, message", [
    ("kdd", "Unknown distillation term 'kdd'"),
    ("fitnets:0.5", "name them"),
    ("kd@conv/conv", "reads the models' logits"),
])
def test_terms_that_cannot_be_built_are_refused_by_name(spec, message):
    with pytest.raises(ValueError, match=message):
        build_terms(DistillSpec(terms=spec), 1)


def test_fitnets_term_trains_student_and_adapter_and_logs_each_term(student, teacher, batch):
    x, y = batch
    distiller = compiled(Distiller(student, teacher, distill="kd:1.0,fitnets:0.5@fc/fc"))
    adapter = distiller.adapters[1]
    assert adapter is not None and adapter.kernel.shape == (8, 32)  # student fc 8 -> teacher fc 32
    params_before = student.count_params()
    adapter_before, teacher_before = adapter.get_weights()[0].copy(), [w.copy() for w in teacher.get_weights()]
    history = distiller.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert {"kd_loss", "fitnets_loss", "distillation_loss", "student_loss"} <= set(history.history)
    np.testing.assert_allclose(
        history.history["distillation_loss"][0],
        history.history["kd_loss"][0] + 0.5 * history.history["fitnets_loss"][0], rtol=1e-4)
    assert not np.array_equal(adapter_before, adapter.get_weights()[0])  # the adapter learns
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)  # the teacher does not
    assert student.count_params() == params_before  # the adapter is not part of the student


def test_feature_term_with_a_wrong_layer_lists_the_layers(student, teacher):
    with pytest.raises(ValueError, match=r"Layer\(s\) \['conv9'\] not found in student 'student'. Available layers: \['conv', 'pool', 'flatten', 'fc', 'logits'\]"):
        Distiller(student, teacher, distill="fitnets@conv9/conv")


def test_attention_term_reads_maps_of_different_size_and_channels(student, batch):
    x, y = batch
    big = keras.Sequential([keras.Input(INPUT_SHAPE), keras.layers.Conv2D(6, 3, padding="same", name="conv"),
                            keras.layers.Conv2D(12, 3, strides=2, padding="same", name="down"),
                            keras.layers.Flatten(), keras.layers.Dense(CLASSES, name="logits")], name="big")
    distiller = compiled(Distiller(student, big, distill="kd,at:10@conv/down"))  # 8x8x4 vs 4x4x12
    expected = ref.attention(features(big, "down", x), pooled(features(student, "conv", x), 4)).mean()
    np.testing.assert_allclose(one_batch(distiller, x, y)["at_loss"], expected, rtol=1e-4)
    assert distiller.adapters[1] is None


def test_relational_and_dkd_terms_match_numpy_references(student, teacher, batch):
    x, y = batch[0][:12], batch[1][:12]  # rkd_angle's reference loops over every triplet
    distiller = compiled(Distiller(student, teacher, distill="dkd,rkd_distance:1@fc/fc,rkd_angle:2@fc/fc,sp:1@conv/conv"))
    logs = one_batch(distiller, x, y)
    s_fc, t_fc = features(student, "fc", x), features(teacher, "fc", x)
    expected = {
        "dkd_loss": ref.dkd(logits(teacher, x), logits(student, x), y, 1.0, 8.0, 4.0).mean(),
        "rkd_distance_loss": ref.rkd_distance(t_fc, s_fc),
        "rkd_angle_loss": ref.rkd_angle(t_fc, s_fc),
        "sp_loss": ref.similarity_preserving(features(teacher, "conv", x), features(student, "conv", x)),
    }
    for key, value in expected.items():
        np.testing.assert_allclose(logs[key], value, rtol=2e-4, atol=1e-6, err_msg=key)
    history = distiller.fit(x, y, batch_size=12, epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_label_free_fit_with_an_encoder_teacher(batch):
    x, _ = batch
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.Input(INPUT_SHAPE), keras.layers.Flatten(), keras.layers.Dense(32, activation="relu", name="emb")], name="encoder")
    small = keras.Sequential([keras.Input(INPUT_SHAPE), keras.layers.Flatten(), keras.layers.Dense(6, name="emb")], name="small")
    distiller = Distiller(small, encoder, distill="embedding")  # no classifier anywhere
    distiller.compile(keras.optimizers.Adam(1e-2))
    history = distiller.fit(x, batch_size=16, epochs=5, verbose=0)
    assert history.history["student_loss"] == [0.0] * 5
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    assert distiller.adapters[0].kernel.shape == (6, 32)
    same_width = keras.Sequential([keras.Input(INPUT_SHAPE), keras.layers.Flatten(), keras.layers.Dense(32, name="emb")], name="same")
    assert Distiller(same_width, encoder, distill="embedding").adapters == [None]  # learns the teacher's space itself


def test_two_teachers_average_their_softened_distributions(student, batch):
    x, y = batch
    t1, t2 = tiny_cnn(16, 32, "t1", seed=5), tiny_cnn(8, 16, "t2", seed=6)
    distiller = compiled(Distiller(student, [t1, t2], temperature=2.0, alpha=0.0, teacher_weights=[3, 1]))
    logs = distiller.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    zs, z1, z2 = (m.predict(x, verbose=0).astype(np.float64) / 2 for m in (student, t1, t2))
    p = 0.75 * softmax(z1) + 0.25 * softmax(z2)
    expected = 4.0 * np.mean(np.sum(p * (np.log(p) - np.log(softmax(zs))), axis=-1))
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-4)


def test_feature_terms_can_name_their_teacher(student, batch):
    x, y = batch
    t1, t2 = tiny_cnn(16, 32, "t1", seed=5), tiny_cnn(8, 16, "t2", seed=6)
    distiller = compiled(Distiller(student, [t1, t2], distill="kd,fitnets:0.5@fc/fc#1"))
    kernel, bias = distiller.adapters[1].get_weights()
    assert kernel.shape == (8, 16)  # sized for teacher 1's fc
    expected = ref.hint(features(t2, "fc", x), features(student, "fc", x) @ kernel + bias).mean()
    np.testing.assert_allclose(one_batch(distiller, x, y)["fitnets_loss"], expected, rtol=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    ({"distill": "kd#2"}, "reads teacher 2, but 1 teacher"),
    ({"teacher_weights": [1, 2]}, "Expected 1 non-negative teacher_weights.*Received: teacher_weights=\\[1.0, 2.0\\]"),
])
def test_bad_teacher_choices_are_refused(student, teacher, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Distiller(student, teacher, **kwargs)


def test_adapters_are_saved_in_checkpoints_and_config_round_trips(tmp_path, student, teacher, batch):
    x, y = batch
    distiller = compiled(Distiller(student, [teacher, tiny_cnn(8, 16, "t2", seed=6)], distill="kd,fitnets:0.5@fc/fc", teacher_weights=[1, 1]))
    distiller.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "ckpt")
    distiller.save_weights(path)
    fresh = compiled(Distiller(tiny_cnn(4, 8, "student", seed=9), [tiny_cnn(16, 32, "teacher", seed=8), tiny_cnn(8, 16, "t2", seed=7)],
                               distill="kd,fitnets:0.5@fc/fc", teacher_weights=[1, 1]))
    fresh.load_weights(path).expect_partial()
    np.testing.assert_array_equal(fresh.adapters[1].get_weights()[0], distiller.adapters[1].get_weights()[0])
    clone = Distiller.from_config(distiller.get_config())
    assert [t.name for t in clone.terms] == ["kd", "fitnets"] and clone.teacher_weights == [0.5, 0.5]
    assert clone.get_config() == distiller.get_config()


def test_term_objects_work_directly(student, teacher, batch):
    x, y = batch
    terms = [TermSpec("kd", 1.0), TermSpec("fitnets", 0.3, student_layer="conv", teacher_layer="conv")]
    distiller = compiled(Distiller(student, teacher, distill=terms))
    kernel, bias = distiller.adapters[1].get_weights()
    assert kernel.shape == (1, 1, 4, 16)  # 1x1 conv, 4 -> 16 channels
    adapted = np.einsum("bhwc,cd->bhwd", features(student, "conv", x), kernel[0, 0]) + bias
    logs = one_batch(distiller, x, y)
    np.testing.assert_allclose(logs["fitnets_loss"], ref.hint(features(teacher, "conv", x), adapted).mean(), rtol=1e-4)
    kd = ref.kd(logits(teacher, x), logits(student, x), 4.0).mean()
    np.testing.assert_allclose(logs["distillation_loss"], kd + 0.3 * logs["fitnets_loss"], rtol=1e-4)


@pytest.mark.slow
def test_terms_find_layers_through_tf_mot_wrappers(student, teacher, batch):
    import kdtf

    x, y = batch
    spec = DistillSpec(terms="kd,fitnets:0.5@fc/fc")
    pruned = kdtf.compress.prune(student, 0.5, layers=["fc"], schedule="constant", frequency=1)
    distiller = compiled(Distiller(pruned, teacher, spec))
    assert np.isfinite(distiller.fit(x, y, epochs=1, verbose=0).history["fitnets_loss"][0])
    quantized = kdtf.compress.quantize(kdtf.compress.strip_pruning(pruned))
    assert np.isfinite(compiled(Distiller(quantized, teacher, spec)).evaluate(x, y, verbose=0, return_dict=True)["fitnets_loss"])


@pytest.mark.slow
def test_compression_fine_tunes_with_the_spec_of_distillation(student, teacher, batch):
    import kdtf

    x, y = batch
    tuner = kdtf.FineTuner(teacher, (x, y), spec=DistillSpec(temperature=2.0, alpha=0.1, terms="kd,fitnets:0.5@fc/fc"), batch_size=16)
    recipe = kdtf.compress.Recipe([kdtf.compress.Prune(0.5, min_weights=100), kdtf.compress.QAT()])
    model, results = recipe.run(student, tuner, epochs=1)
    assert tuner.steps_per_epoch == 4 and results[-1].step == "qat"
    assert results[0].layer_sparsity["fc"] == pytest.approx(0.5, abs=0.01)
