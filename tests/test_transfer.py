"""Backbone classifiers, two-phase fine-tuning and teacher-assisted fine-tuning
(tiny inputs, weights=None, synthetic data)."""

import numpy as np
import pytest

from kdtf import DistillSpec, keras
from kdtf.finetune import fine_tune, freeze_backbone, unfreeze_top
from kdtf.models import backbone_classifier, build
from kdtf.models.transfer import BACKBONES, backbone_layers


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.arange(32) % 2
    x = rng.random((32, 32, 32, 3), dtype=np.float32) * 0.5 + y[:, None, None, None] * 0.4
    return x, y.astype(np.int32)


def _ds(x, y):
    from kdtf._keras import tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def _bn_state(model):
    return {
        layer.name: [w.numpy().copy() for w in layer.weights]
        for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    }


@pytest.mark.parametrize("name", sorted(BACKBONES))
@pytest.mark.slow
def test_every_backbone_builds_flat_from_grey_input_to_logits(name):
    model = build(name, (32, 32, 1), 5, weights=None)
    assert model.output_shape == (None, 5) and model.layers[-1].name == "logits"
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)  # flat: taps, pruning reach all


@pytest.mark.slow
def test_weights_from_a_local_no_top_file_are_loaded(tmp_path):
    reference = keras.applications.MobileNetV2(alpha=0.35, include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    path = str(tmp_path / "mobilenet_v2_035_notop.h5")
    reference.save_weights(path)
    model = backbone_classifier("mobilenet_v2_035", (32, 32, 3), 3, weights=path)
    for layer in (r for r in reference.layers if r.weights):
        for a, b in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "weights, message",
    [("imagenet", "kdtf does not download weights"), ("/no/such/file.h5", "not found"), ("corrupt", "Could not load")],
)
@pytest.mark.slow
def test_bad_weights_are_refused(tmp_path, weights, message):
    if weights == "corrupt":
        weights = str(tmp_path / "corrupt.h5")
        open(weights, "wb").write(b"not hdf5")
    with pytest.raises(ValueError, match=message):
        backbone_classifier("mobilenet_v2_035", (32, 32, 3), 3, weights=weights)


def test_too_small_input_names_the_fix():
    with pytest.raises(ValueError, match="at least 32x32.*--image-size"):
        backbone_classifier("mobilenet_v2_035", (16, 16, 3), 3)


def test_frozen_then_top_unfrozen_trainable_sets_keep_batchnorm_frozen():
    model = backbone_classifier("mobilenet_v2_035", (32, 32, 3), 2)
    freeze_backbone(model)
    assert {v.name.split("/")[0] for v in model.trainable_variables} == {"logits"}
    unfrozen = unfreeze_top(model, 10)
    top = backbone_layers(model)[-10:]
    expected = {layer.name for layer in top if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)}
    assert set(unfrozen) == expected and expected
    assert {v.name.split("/")[0] for v in model.trainable_variables} == expected | {"logits"}
    assert not any(layer.trainable for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    with pytest.raises(ValueError, match="Expected unfreeze_layers to be an integer between 0 and the"):
        unfreeze_top(model, 10_000)


@pytest.mark.slow
def test_two_phase_fine_tuning_trains_head_then_top_and_leaves_batchnorm_statistics(data):
    x, y = data
    keras.utils.set_random_seed(0)
    model = backbone_classifier("mobilenet_v2_035", (32, 32, 3), 2)
    before = _bn_state(model)
    conv1 = model.get_layer("Conv1").get_weights()[0].copy()
    top_conv = model.get_layer("Conv_1").get_weights()[0].copy()
    head = model.get_layer("logits").get_weights()[0].copy()
    result = fine_tune(model, _ds(x, y), head_epochs=1, epochs=1, unfreeze_layers=5, verbose=0)
    assert "Conv_1" in result["unfrozen"] and result["head"]["loss"] and result["finetune"]["loss"]
    after = _bn_state(model)
    for name in before:  # moving mean/variance and gamma/beta unchanged by both phases
        for a, b in zip(before[name], after[name]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(conv1, model.get_layer("Conv1").get_weights()[0])  # stayed frozen
    assert not np.array_equal(top_conv, model.get_layer("Conv_1").get_weights()[0])  # unfrozen top trained
    assert not np.array_equal(head, model.get_layer("logits").get_weights()[0])


@pytest.mark.slow
def test_teacher_assisted_fine_tuning_distils_into_a_pretrained_student(data):
    x, y = data
    keras.utils.set_random_seed(1)
    teacher = keras.Sequential([  # a random MobileNetV2 with BN in inference mode outputs ~0
        keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, strides=4, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(2)], name="teacher")
    student = backbone_classifier("mobilenet_v2_035", (32, 32, 3), 2, model_name="student")
    result = fine_tune(
        student, _ds(x, y), head_epochs=1, epochs=1, unfreeze_layers=5, teacher=teacher,
        spec=DistillSpec(temperature=2.0, alpha=0.5), verbose=0,
    )
    assert result["head"]["distillation_loss"][0] > 0 and np.isfinite(result["finetune"]["loss"][0])


def test_fine_tune_refuses_a_model_without_backbone(student):
    with pytest.raises(ValueError, match="not built by kdtf.models.backbone_classifier"):
        fine_tune(student, None, head_epochs=1, epochs=1)


@pytest.mark.parametrize("preserve", [None, "sparsity"])
@pytest.mark.slow
def test_backbone_student_can_be_pruned_and_quantized_with_float_preprocessing(preserve):
    from kdtf.compress import prune, quantize, strip_pruning

    model = backbone_classifier("mobilenet_v2_035", (32, 32, 3), 2)
    pruned = prune(model, 0.5, min_weights=1000)
    wrapped = {layer.layer.name for layer in pruned.layers if hasattr(layer, "layer")}
    assert "Conv_1" in wrapped and not any("depthwise" in n for n in wrapped)  # depthwise only when named
    qat = quantize(strip_pruning(pruned), preserve=preserve, skip=["preprocess_scale"])
    assert qat.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0).shape == (1, 2)
