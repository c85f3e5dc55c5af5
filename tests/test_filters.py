"""Structured (filter) pruning: kdtf.compress.filters, channels, importance, filter_rounds;
MACs from the .tflite (kdtf.export.macs) and verify_filters."""

import types

import numpy as np
import pytest

from kdtf import compress, export, keras, training
from kdtf.compress.filter_rounds import LOGIT_RECOVERY, FilterPrune, round_epochs
from kdtf.export.macs import count_macs
from kdtf.training import FineTuner

layers = keras.layers


def _randomise_batch_norms(model, rng):
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n), rng.uniform(0.5, 2, n)])


def _scale(model, name, index, factor, axis=-1, weight=0):
    weights = model.get_layer(name).get_weights()
    taken = np.moveaxis(weights[weight], axis, -1)
    taken[..., index] *= factor
    model.get_layer(name).set_weights(weights)


def _zero(model, name, index, weights_axes):
    """Sets weight ``w`` of layer ``name`` to 0 at ``index`` along ``weights_axes[w]``."""
    weights = model.get_layer(name).get_weights()
    for w, axis in weights_axes.items():
        np.moveaxis(weights[w], axis, -1)[..., index] = 0
    model.get_layer(name).set_weights(weights)


def branchy_model(seed=0):
    """conv a (BN, ReLU) -> depthwise (BN, ReLU) -> [conv p (4), separable q (4)] ->
    Concatenate -> Add with a (ties a's 8 channels to p's 4 then q's 4) -> GAP -> fc -> logits."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((8, 8, 3))
    a = layers.ReLU(name="a_relu")(layers.BatchNormalization(name="a_bn")(layers.Conv2D(8, 3, padding="same", name="a")(x)))
    d = layers.DepthwiseConv2D(3, padding="same", name="dw")(a)
    d = layers.ReLU(name="dw_relu")(layers.BatchNormalization(name="dw_bn")(d))
    cat = layers.Concatenate(name="cat")([layers.Conv2D(4, 1, name="p")(d), layers.SeparableConv2D(4, 3, padding="same", name="q")(d)])
    s = layers.ReLU(name="add_relu")(layers.Add(name="add")([a, cat]))
    h = layers.Dense(6, activation="relu", name="fc")(layers.GlobalAveragePooling2D(name="gap")(s))
    model = keras.Model(x, layers.Dense(3, name="logits")(h), name="branchy")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights and not isinstance(layer, layers.BatchNormalization):
            layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])
    _randomise_batch_norms(model, rng)
    return model


def flatten_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        layers.Conv2D(6, 3, padding="same", name="conv"),
        layers.BatchNormalization(name="bn"),
        layers.ReLU(name="relu"),
        layers.MaxPooling2D(name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dense(6, activation="relu", name="fc"),
        layers.Dense(3, name="logits"),
    ], name="flat")
    _randomise_batch_norms(model, np.random.default_rng(seed))
    return model


def _inputs(model, n=5, seed=1):
    return np.random.default_rng(seed).normal(size=(n,) + tuple(model.input_shape[1:])).astype(np.float32)


def test_pruned_model_equals_original_with_removed_filters_zeroed_through_bn_depthwise_concat_and_add():
    model = branchy_model()
    # tied class 1 = a[1] + p[1]; class 6 = a[6] + q[2] (Concatenate offset 4); fc units 0 and 4
    for name, index in (("a", [1, 6]), ("p", [1]), ("fc", [0, 4])):
        _scale(model, name, index, 1e-3)
    _scale(model, "q", [2], 1e-3, weight=1)
    pruned, report = compress.prune_filters(model, 0.25)
    assert report["layers"] == {"a": {"kept": 6, "total": 8}, "p": {"kept": 3, "total": 4},
                                "q": {"kept": 3, "total": 4}, "fc": {"kept": 4, "total": 6}}
    assert report["groups"] == [["a", "p", "q"], ["fc"]]
    assert report["unprunable"] == {"logits": "is a model output"}

    zeroed = compress.clone_with_weights(model)
    _zero(zeroed, "a", [1, 6], {0: 3, 1: 0})
    for bn in ("a_bn", "dw_bn"):  # beta and moving mean 0: BN(0) = 0
        _zero(zeroed, bn, [1, 6], {1: 0, 2: 0})
    _zero(zeroed, "dw", [1, 6], {1: 0})  # the depthwise bias of the dead channels
    _zero(zeroed, "p", [1], {0: 3, 1: 0})
    _zero(zeroed, "q", [2], {1: 3, 2: 0})
    _zero(zeroed, "fc", [0, 4], {0: 1, 1: 0})
    x = _inputs(model)
    np.testing.assert_allclose(pruned(x, training=False), zeroed(x, training=False), atol=1e-5, rtol=1e-5)
    assert pruned.count_params() < model.count_params()


def test_dense_rows_behind_a_flatten_are_removed_with_the_conv_filters():
    model = flatten_model()
    _scale(model, "conv", [0, 4], 1e-3)
    _scale(model, "fc", [1, 3], 1e-3)
    pruned, report = compress.prune_filters(model, 1 / 3)
    assert compress.count_filters(pruned) == {"conv": 4, "fc": 4, "logits": 3}
    assert pruned.get_layer("fc").kernel.shape == (3 * 3 * 4, 4)
    zeroed = compress.clone_with_weights(model)
    _zero(zeroed, "conv", [0, 4], {0: 3, 1: 0})
    _zero(zeroed, "bn", [0, 4], {1: 0, 2: 0})
    _zero(zeroed, "fc", [1, 3], {0: 1, 1: 0})
    x = _inputs(model)
    np.testing.assert_allclose(pruned(x, training=False), zeroed(x, training=False), atol=1e-5, rtol=1e-5)


def test_squeeze_excitation_reshape_and_multiply_keep_channels_aligned():
    keras.utils.set_random_seed(0)
    x = keras.Input((6, 6, 2))
    a = layers.ReLU(name="relu")(layers.BatchNormalization(name="bn")(layers.Conv2D(6, 3, padding="same", name="conv")(x)))
    se = layers.Reshape((1, 1, 6), name="se_reshape")(layers.GlobalAveragePooling2D(name="se_pool")(a))
    se = layers.Conv2D(6, 1, activation="sigmoid", name="se_expand")(layers.Conv2D(3, 1, activation="relu", name="se_reduce")(se))
    y = layers.GlobalAveragePooling2D(name="pool")(layers.Multiply(name="scale")([a, se]))
    model = keras.Model(x, layers.Dense(3, name="logits")(y))
    _randomise_batch_norms(model, np.random.default_rng(0))
    for name in ("conv", "se_expand"):
        _scale(model, name, [2, 5], 1e-3)
    pruned, report = compress.prune_filters(model, 1 / 3, layers=["conv"])
    assert report["groups"] == [["conv", "se_expand"]]
    assert pruned.get_layer("se_reshape").output_shape == (None, 1, 1, 4)
    zeroed = compress.clone_with_weights(model)
    _zero(zeroed, "conv", [2, 5], {0: 3, 1: 0})
    _zero(zeroed, "bn", [2, 5], {1: 0, 2: 0})
    x = _inputs(model)
    np.testing.assert_allclose(pruned(x, training=False), zeroed(x, training=False), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, "x", True, None])
def test_bad_fraction_is_one_clear_line(fraction):
    with pytest.raises(ValueError, match=r"Expected the fraction of filters to remove in \(0, 1\)") as error:
        compress.prune_filters(flatten_model(), fraction)
    assert "\n" not in str(error.value)


def test_unprunable_layers_are_named_with_the_reason_in_one_line():
    keras.utils.set_random_seed(0)
    x = keras.Input((4, 4, 1))
    a = layers.Conv2D(4, 3, padding="same", name="a")(x)
    r = layers.Reshape((4, 16), name="reshape")(a)
    b = layers.Conv2D(4, 3, padding="same", name="b")(x)
    y = layers.Add(name="skip")([b, layers.Conv2D(1, 1, name="c")(x)])  # broadcast from 1 channel: b stays prunable
    out = layers.Dense(2, name="out")(layers.Concatenate(name="cat")([layers.Flatten()(r), layers.Flatten()(y)]))
    model = keras.Model(x, out)
    reasons = compress.unprunable_filters(model)
    assert reasons == {"a": "feeds Reshape 'reshape' (a reshape that moves the channel axis)", "out": "is a model output"}
    assert [g.layers for g in compress.prunable_groups(model)] == [("b",), ("c",)]
    for names, message in ((["a"], "Layer 'a' cannot be pruned: it feeds Reshape 'reshape'"),
                           (["out"], "Layer 'out' cannot be pruned: it is a model output"),
                           (["reshape"], "Layer 'reshape' \\(Reshape\\) has no filters to remove"),
                           (["nope"], "Unknown layer name")):
        with pytest.raises(ValueError, match=message) as error:
            compress.prune_filters(model, 0.5, layers=names)
        assert "\n" not in str(error.value)


def test_layers_and_skip_choose_the_groups_pruned():
    model = branchy_model()
    _, only_fc = compress.prune_filters(model, 0.5, layers=["fc"])
    assert list(only_fc["layers"]) == ["fc"]
    _, skipped = compress.prune_filters(model, 0.5, skip=["p"])  # p's group (a, p, q) stays whole
    assert list(skipped["layers"]) == ["fc"]


@pytest.mark.parametrize("criterion", ["l1", "l2", "bn", "taylor"])
def test_each_criterion_removes_the_filters_it_ranks_lowest(criterion):
    model = branchy_model()
    x = _inputs(model, 32)
    y = np.arange(32) % 3
    dead = 3  # the filter each criterion should see as least important
    if criterion in ("l1", "l2"):
        for name, index in (("a", [dead]), ("p", [dead])):
            _scale(model, name, index, 1e-3)
    elif criterion == "bn":
        for bn in ("a_bn", "dw_bn"):
            _scale(model, bn, [dead], 1e-4)
    else:  # a ReLU that never fires: large kernel (l1 keeps it), zero activation x gradient
        _scale(model, "a", [dead], 1e2)
        bias = model.get_layer("a_bn").get_weights()
        bias[1][dead], bias[0][dead] = -1e4, 1.0
        model.get_layer("a_bn").set_weights(bias)
        p = model.get_layer("p").get_weights()
        p[1][dead] = -1e3  # p's half of the tied class is dead too
        model.get_layer("p").set_weights(p)
    pruned, report = compress.prune_filters(model, 1 / 8, criterion=criterion, layers=["a"], data=(x, y))
    kept = pruned.get_layer("a").get_weights()[0]
    original = model.get_layer("a").get_weights()[0]
    np.testing.assert_array_equal(kept, np.delete(original, dead, axis=3))
    if criterion == "taylor":  # the dead filter has the largest kernel: l1 removes another one
        by_l1, _ = compress.prune_filters(model, 1 / 8, criterion="l1", layers=["a"])
        assert by_l1.get_layer("a").get_weights()[0].shape == kept.shape
        assert not np.array_equal(by_l1.get_layer("a").get_weights()[0], kept)


def test_bn_criterion_names_layers_without_batch_norm_and_taylor_needs_data():
    _, report = compress.prune_filters(branchy_model(), 0.25, criterion="bn")
    assert "fc" not in report["layers"] and "BatchNormalization" in report["unprunable"]["fc"]
    with pytest.raises(ValueError, match="No filters of 'student' can be removed: .*'conv1' has no BatchNormalization"):
        compress.prune_filters(keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, name="conv1"), layers.Flatten(),
                                                 layers.Dense(2, name="out")], name="student"), 0.5, criterion="bn", layers=["conv1"])
    with pytest.raises(ValueError, match="Expected data=.*criterion='taylor'"):
        compress.prune_filters(branchy_model(), 0.25, criterion="taylor")


def test_global_scope_ranks_all_filters_but_keeps_the_minimum_per_group():
    model = flatten_model()
    _scale(model, "conv", [0, 1, 2, 3, 4], 1e-4)  # five of six conv filters look useless
    _, report = compress.prune_filters(model, 0.5, scope="global", min_keep=0.5)
    assert report["layers"]["conv"]["kept"] == 3  # ceil(0.5 * 6)
    assert report["layers"]["conv"]["kept"] + report["layers"]["fc"]["kept"] == 6  # 6 of 12 removed
    _, uniform = compress.prune_filters(model, 0.5)
    assert uniform["layers"]["conv"]["kept"] == uniform["layers"]["fc"]["kept"] == 3
    _, at_least = compress.prune_filters(model, 0.5, scope="global", min_keep=5)
    assert at_least["layers"]["conv"]["kept"] == 5
    _, rounded = compress.prune_filters(model, 0.5, multiple_of=4)
    assert rounded["layers"]["conv"]["kept"] == 4


def test_count_macs_matches_hand_counts_of_the_default_student():
    student = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(8, 3, padding="same", name="conv1"), layers.MaxPooling2D(),
        layers.Conv2D(16, 3, padding="same", name="conv2"), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dense(32, name="fc1"), layers.Dense(10, name="logits")])
    macs = count_macs(export.to_tflite(student))
    assert [e["macs"] for e in macs["per_op"]] == [28 * 28 * 8 * 9, 14 * 14 * 16 * 9 * 8, 784 * 32, 32 * 10]
    assert [e["op"] for e in macs["per_op"]] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED", "FULLY_CONNECTED"]


def test_count_macs_uses_runtime_shapes_of_a_dense_on_a_sequence_and_batch_matmul():
    from kdtf._keras import tf

    x = keras.Input((3, 5))
    a = layers.Dense(4, name="d")(x)  # (3, 4): a RESHAPE to rows, then FULLY_CONNECTED
    model = keras.Model(x, tf.linalg.matmul(a, x, transpose_a=True))  # (4, 3) @ (3, 5), adj_x
    per_op = count_macs(export.to_tflite(model))["per_op"]
    assert [(e["op"], e["macs"]) for e in per_op] == [("FULLY_CONNECTED", 3 * 5 * 4), ("BATCH_MATMUL", 4 * 5 * 3)]


def _keras_macs(model):
    total = 0
    for layer in model.layers:
        out = layer.output_shape
        if type(layer) is layers.Conv2D:
            total += np.prod(out[1:]) * np.prod(layer.kernel_size) * layer.input_shape[-1]
        elif type(layer) is layers.DepthwiseConv2D:
            total += np.prod(out[1:]) * np.prod(layer.kernel_size)
        elif type(layer) is layers.SeparableConv2D:  # depthwise, then pointwise
            spatial, channels = np.prod(out[1:-1]), layer.input_shape[-1] * layer.depth_multiplier
            total += spatial * channels * (np.prod(layer.kernel_size) + layer.filters)
        elif type(layer) is layers.Dense:
            total += layer.input_shape[-1] * layer.units
    return int(total)


def test_pruned_tflite_holds_the_reduced_shapes_and_the_keras_mac_count():
    model = branchy_model()
    pruned, report = compress.prune_filters(model, 0.5)
    flatbuffer = export.to_tflite(pruned)
    expected = {name: kept["kept"] for name, kept in report["layers"].items()}
    assert expected == {"a": 4, "p": 2, "q": 2, "fc": 3}
    assert compress.verify_filters(flatbuffer, expected) == expected
    assert count_macs(flatbuffer)["total"] == _keras_macs(pruned) < _keras_macs(model)
    with pytest.raises(ValueError, match=r"a: 4 \(expected 5\), nope: no CONV_2D/FULLY_CONNECTED op found"):
        compress.verify_filters(flatbuffer, dict(expected, a=5, nope=1))


@pytest.mark.slow
def test_pruned_mobilenet_v2_converts_with_reduced_shapes_and_fewer_macs():
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    pruned, report = compress.prune_filters(model, 0.5)
    assert report["unprunable"] == {"predictions": "ends in a softmax over its filters"}
    assert ("block_1_project", "block_2_project") in [g.layers for g in compress.prunable_groups(model)]
    flatbuffer = export.to_tflite(pruned)
    expected = {name: kept["kept"] for name, kept in report["layers"].items()}
    assert compress.verify_filters(flatbuffer, expected) == expected
    before, after = count_macs(export.to_tflite(model))["total"], count_macs(flatbuffer)["total"]
    assert (before, after) == (_keras_macs(model), _keras_macs(pruned))
    assert 0.2 < after / before < 0.35  # inputs and outputs of most convs halved: about 1/4


@pytest.mark.slow
def test_resnet50_prunes_its_residual_stages_together_and_converts():
    model = keras.applications.ResNet50(input_shape=(32, 32, 3), weights=None, classes=10)
    groups = {g.layers[0]: g.layers for g in compress.prunable_groups(model)}
    assert groups["conv2_block1_0_conv"] == ("conv2_block1_0_conv", "conv2_block1_3_conv", "conv2_block2_3_conv", "conv2_block3_3_conv")
    pruned, report = compress.prune_filters(model, 0.5, scope="global")
    kept = {n: v["kept"] for n, v in report["layers"].items()}
    assert len({kept[n] for n in groups["conv2_block1_0_conv"]}) == 1
    assert pruned.count_params() < 0.4 * model.count_params()
    assert compress.verify_filters(export.to_tflite(pruned, "float16"), kept) == kept


@pytest.mark.slow
def test_pruned_backbone_student_goes_through_qat_to_int8_with_reduced_shapes():
    from kdtf.models import build

    model = build("mobilenet_v2_035", (32, 32, 1), 5)
    pruned, report = compress.prune_filters(model, 0.5, criterion="l2")
    assert report["unprunable"] == {"logits": "is a model output"}
    qat = compress.quantize(pruned, skip=[n.name for n in pruned.layers if n.name.startswith("preprocess_")])
    flatbuffer = export.to_tflite(qat, "int8")
    expected = compress.count_filters(pruned)
    assert compress.verify_filters(flatbuffer, expected) == expected


def _fake_context(calls, x, y, epochs=4):
    def fine_tune(model, epochs, *, teacher=None, callbacks=None, **spec):
        calls.append({"epochs": epochs, "teacher": teacher, "filters": compress.count_filters(model), **spec})
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
        return model

    return types.SimpleNamespace(fine_tune=fine_tune, epochs=epochs, steps_per_epoch=2, log=lambda line: None,
                                 train_data=None, pruned={}, clustered={})


@pytest.mark.slow
def test_filter_step_prunes_in_rounds_and_fine_tunes_after_each():
    model = flatten_model()
    x, y = _inputs(model, 32), np.arange(32) % 3
    calls = []
    pruned, record = FilterPrune(0.5, rounds=3, recovery="terms").run(model, _fake_context(calls, x, y, epochs=4))
    assert [c["epochs"] for c in calls] == [2, 1, 1]
    assert [c["filters"]["conv"] for c in calls] == [5, 4, 3]  # 6 * 0.794^k, rounded
    assert all(c["teacher"] is None and "spec" not in c for c in calls)
    assert record["layers"] == ["conv", "fc"] and record["filters"]["conv"] == {"kept": 3, "total": 6}
    assert record["params"] == pruned.count_params() < record["params_before"]


def test_self_distilled_filter_step_teaches_from_a_frozen_copy_of_the_unpruned_model():
    model = flatten_model()
    x, y = _inputs(model, 32), np.arange(32) % 3
    calls = []
    FilterPrune(0.5, rounds=2, self_distill=True, epochs=2).run(model, _fake_context(calls, x, y))
    teachers = {id(c["teacher"]) for c in calls}
    teacher = calls[0]["teacher"]
    assert len(calls) == 2 and len(teachers) == 1 and not teacher.trainable
    assert compress.count_filters(teacher) == compress.count_filters(model)
    np.testing.assert_array_equal(teacher.get_layer("conv").get_weights()[0], model.get_layer("conv").get_weights()[0])


def test_logit_recovery_passes_the_minitron_spec_to_every_round():
    model = flatten_model()
    x, y = _inputs(model, 32), np.arange(32) % 3
    calls = []
    _, record = FilterPrune(0.5, rounds=2, epochs=2).run(model, _fake_context(calls, x, y))
    assert len(calls) == 2 and all(c["spec"] is LOGIT_RECOVERY for c in calls)
    assert (LOGIT_RECOVERY.temperature, LOGIT_RECOVERY.alpha) == (1.0, 0.0) and record["recovery"] == "logits"
    context = _fake_context([], x, y)
    context.fine_tune = lambda model, epochs, *, teacher=None, callbacks=None: model
    with pytest.raises(ValueError, match=r"does not accept spec=.*'filters:F:terms'") as error:
        FilterPrune(0.5, rounds=1, epochs=1).run(flatten_model(), context)
    assert "\n" not in str(error.value)
    assert FilterPrune(0.5, rounds=1, epochs=1, recovery="terms").run(flatten_model(), context)[1]["recovery"] == "terms"

    def failing(model, epochs, **kwargs):  # a TypeError from inside training is not the spec= message
        raise TypeError("Expected TensorSpec, got spec of another dtype")

    context.fine_tune = failing
    with pytest.raises(TypeError, match="TensorSpec"):
        FilterPrune(0.5, rounds=1, epochs=1).run(flatten_model(), context)


def test_finetuner_uses_a_per_call_spec():
    model = flatten_model()
    x, y = _inputs(model, 16), np.arange(16) % 3
    teacher = flatten_model()
    seen = []
    tuner = FineTuner(teacher, (x, y), batch_size=8)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "fit", lambda model, data, **kwargs: seen.append(kwargs["spec"]))
        tuner(model, 1)
        tuner(model, 1, spec=LOGIT_RECOVERY)
    assert seen == [tuner.spec, LOGIT_RECOVERY]


def test_filter_step_parses_its_string_form_and_rejects_bad_values():
    assert FilterPrune.parse("filters:0.5") == FilterPrune(0.5)
    assert FilterPrune.parse("filters:0.75:terms:self") == FilterPrune(0.75, self_distill=True, recovery="terms")
    assert FilterPrune(0.5).recovery == "logits"
    assert FilterPrune.parse(" filters:0.75:taylor:global:4:self") == FilterPrune(0.75, "taylor", "global", 4, True)
    assert FilterPrune.parse("prune:0.5") is None and FilterPrune.parse("qat") is None
    assert FilterPrune(0.5).name == "filters 50%" and FilterPrune(0.5).short == "filters"
    for text, message in (("filters", "Expected filters:F"), ("filters:x", "Expected filters:F"),
                          ("filters:1", r"in \(0, 1\)"), ("filters:0.5:fast", "Unknown option 'fast'")):
        with pytest.raises(ValueError, match=message) as error:
            FilterPrune.parse(text)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"Expected recovery in \('logits', 'terms'\). Received: recovery='soft'"):
        FilterPrune(0.5, recovery="soft")
    assert round_epochs(5, 3) == [2, 2, 1] and round_epochs(1, 3) == [1, 1, 1]


def test_filter_round_log_says_how_the_round_is_fine_tuned():
    model = flatten_model()
    x, y = _inputs(model, 8), np.arange(8) % 3
    teacher = flatten_model()
    expected = {(teacher, "logits", False): "fine-tuning 1 epoch(s) (logit KL at T = 1)",
                (None, "logits", False): "fine-tuning 1 epoch(s) by cross-entropy",
                (None, "logits", True): "fine-tuning 1 epoch(s) from the unpruned student (logit KL at T = 1)",
                (teacher, "terms", False): "fine-tuning 1 epoch(s) (the run's distillation terms)"}
    for (tuner_teacher, recovery, self_distill), ending in expected.items():
        logged = []
        context = types.SimpleNamespace(fine_tune=FineTuner(tuner_teacher, (x, y), batch_size=8), epochs=1, steps_per_epoch=1,
                                        log=logged.append, train_data=None, pruned={}, clustered={})
        FilterPrune(0.5, rounds=1, epochs=1, recovery=recovery, self_distill=self_distill).run(flatten_model(), context)
        assert logged[0].endswith(ending), (logged, ending)
