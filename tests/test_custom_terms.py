"""A distillation term of one's own, defined in this file alone: as an instance (no
registry), registered by its decorator, with a Keras loss on named layers, saved and
reloaded; and the registry that holds the terms."""

import numpy as np
import pytest

import kdtf
from kdtf import Distiller, keras
from kdtf._keras import tf
from kdtf.registry import Registry, scan_names
from kdtf.taps import tap


class CosineLogitsTerm(kdtf.Term):
    """``1 - cos(z_t, z_s)`` per example, on the logits."""

    layers = "never"

    def values(self, teachers, student, labels):
        t, s = teachers[self.teacher][None], student[None]
        return 1.0 - tf.reduce_sum(tf.math.l2_normalize(t, -1) * tf.math.l2_normalize(s, -1), -1)


def numpy_cosine(t, s):
    """As tf.math.l2_normalize: a zero vector (a dead student) stays zero."""
    def unit(z):
        return z / np.sqrt(np.maximum((z**2).sum(1, keepdims=True), 1e-12))

    return 1 - (unit(t) * unit(s)).sum(1)


def numpy_kd(t, s, temperature):
    def softmax(z):
        e = np.exp((z - z.max(-1, keepdims=True)) / temperature)
        return e / e.sum(-1, keepdims=True)

    p_t, p_s = softmax(t), softmax(s)
    return temperature**2 * np.sum(p_t * np.log(p_t / p_s), axis=-1)


def logits(model, x):
    return model.predict(x, verbose=0).astype(np.float64)


def one_batch(distiller, x, y):
    distiller.compile(keras.optimizers.Adam(1e-2))
    return distiller.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)


def test_a_term_instance_of_my_own_trains_through_the_distiller(student, teacher, batch):
    x, y = batch
    distiller = Distiller(student, teacher, alpha=0.0, distill=[CosineLogitsTerm(weight=2.0)])
    expected = 2.0 * numpy_cosine(logits(teacher, x), logits(student, x)).mean()
    np.testing.assert_allclose(one_batch(distiller, x, y)["distillation_loss"], expected, rtol=1e-4)
    history = distiller.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]


def test_a_registered_term_of_my_own_is_named_in_spec_strings(student, teacher, batch):
    @kdtf.register_term("cosine_logits_test")
    class RegisteredCosine(CosineLogitsTerm):
        pass

    assert "cosine_logits_test" in kdtf.terms.names()
    x, y = batch
    distiller = Distiller(student, teacher, temperature=2.0, distill="kd,cosine_logits_test:0.5")
    logs = one_batch(distiller, x, y)
    zt, zs = logits(teacher, x), logits(student, x)
    np.testing.assert_allclose(logs["cosine_logits_test_loss"], numpy_cosine(zt, zs).mean(), rtol=1e-4)
    np.testing.assert_allclose(logs["kd_loss"], numpy_kd(zt, zs, 2.0).mean(), rtol=1e-4)
    np.testing.assert_allclose(logs["distillation_loss"], logs["kd_loss"] + 0.5 * logs["cosine_logits_test_loss"], rtol=1e-5)


def test_a_feature_term_with_a_plain_function_gets_an_adapter(student, teacher, batch):
    x, y = batch
    l1 = kdtf.terms.FeatureTerm(lambda t, s: tf.reduce_mean(tf.abs(t - s), -1), student_layer="fc", teacher_layer="fc", name="l1")
    distiller = Distiller(student, teacher, distill=["kd", l1])
    kernel, bias = distiller.adapters[1].get_weights()  # fc: 8 -> 32 wide
    s_fc = tap(student, ["fc"]).predict(x, verbose=0)[1] @ kernel + bias
    t_fc = tap(teacher, ["fc"]).predict(x, verbose=0)[1]
    np.testing.assert_allclose(one_batch(distiller, x, y)["l1_loss"], np.abs(t_fc - s_fc).mean(), rtol=1e-4)
    assert l1.adapter is None  # the Distiller built its own copy: the instance can be reused


def test_each_distiller_holds_its_own_copy_of_a_term_instance(student, teacher):
    hint = kdtf.losses.HintTerm(student_layer="fc", teacher_layer="fc")
    first, second = Distiller(student, teacher, distill=[hint]), Distiller(student, teacher, distill=[hint])
    assert first.adapters[0] is not second.adapters[0] and first.terms[0].name == "fitnets"


def test_a_distiller_with_a_serializable_term_object_round_trips_its_config(student, teacher):
    @keras.saving.register_keras_serializable(package="tests")
    class SavedCosine(CosineLogitsTerm):
        pass

    distiller = Distiller(student, teacher, distill=["kd", SavedCosine(weight=0.25, name="cos")])
    clone = Distiller.from_config(distiller.get_config())
    assert [(t.name, t.weight, type(t).__name__) for t in clone.terms] == [("kd", 1.0, "KDTerm"), ("cos", 0.25, "SavedCosine")]


def test_a_term_object_with_a_bad_weight_is_refused():
    with pytest.raises(ValueError, match="Expected the weight of 'cosine_logits' >= 0"):
        CosineLogitsTerm(weight=-1)


def test_the_registry_refuses_a_taken_name_and_lists_the_known_ones():
    registry = Registry("widget")

    @registry.register("a")
    class A:
        pass

    with pytest.raises(ValueError, match="The widget name 'a' is taken by"):
        registry.register("a")(type("B", (), {}))
    with pytest.raises(ValueError, match="Unknown widget 'b'. Known: a"):
        registry.get("b")
    with pytest.raises(ValueError, match="Expected a widget name without"):
        registry.register("a:b")


def test_the_catalog_scan_finds_a_term_in_a_new_file_without_importing_it(tmp_path):
    (tmp_path / "mine.py").write_text(
        "import tensorflow_that_does_not_exist\n\n"
        "@register_term('mine')\nclass Mine(Term):\n    pass\n\n"
        "@terms.register_term('other')\nclass Other(Term):\n    pass\n"
    )
    assert scan_names(str(tmp_path), "register_term") == ("mine", "other")
