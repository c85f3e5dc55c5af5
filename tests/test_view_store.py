"""Replayable views and the view store: rebuilt bit-identically, soft labels equal the
teacher's on that view, invalidated by teacher/data/policy, resumed after a kill."""

import errno
import json
import os

import numpy as np
import pytest

from kdtf import Distiller, keras
from kdtf._keras import tf
from kdtf.data import Splits, view_store
from kdtf.data.view_store import ViewStore, expand_top_k, parse_views_option
from kdtf.data.views import ViewPolicy, check_replayable, example_reader, view_batches

from helpers import CLASSES, INPUT_SHAPE, tiny_cnn

NAMES = ["a", "b", "c", "d"]


def _splits(n=40, seed=0, rgb=False):
    rng = np.random.default_rng(seed)
    shape = INPUT_SHAPE[:2] + ((3,) if rgb else (1,))
    x = rng.random((n,) + shape, dtype=np.float32)
    y = (np.arange(n) % CLASSES).astype(np.int32)
    y[::5] = -1  # an unlabeled transfer share
    return Splits("tiny", x, y, x[:8], np.abs(y[:8]), x[:8], np.abs(y[:8]), NAMES, "x")


def _softmax(z, t):
    e = np.exp((z - z.max(-1, keepdims=True)) / t)
    return e / e.sum(-1, keepdims=True)


def _store(data, teacher, tmp_path, policy="flip,crop", views=3, top_k=2, **options):
    distiller = Distiller(tiny_cnn(4, 8, "student", seed=2), teacher, temperature=2.0)
    return ViewStore.for_distiller(distiller, data, policy, views=views, top_k=top_k, cache_dir=str(tmp_path),
                                   batch_size=16, **options)


@pytest.mark.parametrize("names", ["flip,crop", "flip,crop,jitter,mixup,cutmix"])
def test_a_view_rebuilt_from_its_seed_in_another_batch_is_bit_identical(names):
    data = _splits(rgb=True)
    policy = ViewPolicy(names, data.input_shape, data.num_classes, seed=7)
    x, y, p, v = next(iter(view_batches(data, "train", 16, policy, views=4, seed=1)))
    read = example_reader(data, "train")
    for i in (0, 5, 11):
        xi, yi = read(p[i:i + 1])
        again_x, again_y = policy(xi, yi, p[i:i + 1], v[i:i + 1], read=read, size=data.size("train"))
        assert np.array_equal(again_x.numpy()[0], x.numpy()[i])
        assert np.array_equal(again_y.numpy()[0], y.numpy()[i])
    assert not np.array_equal(x.numpy()[0], data.x_train[p.numpy()[0]])  # the view did change the pixels


def test_views_differ_by_view_index_and_epochs_draw_stored_views():
    data = _splits()
    policy = ViewPolicy("flip,crop", data.input_shape, data.num_classes, seed=0)
    x, _ = example_reader(data, "train")(tf.constant([3, 3], tf.int64))
    a = policy.images(x, tf.constant([3, 3], tf.int64), tf.constant([0, 1], tf.int64)).numpy()
    assert not np.array_equal(a[0], a[1])
    it = iter(view_batches(data, "train", 40, policy, views=2, seed=0))
    epochs = [next(it) for _ in range(3)]
    for _, _, p, v in epochs:
        assert sorted(p.numpy().tolist()) == list(range(40)) and set(v.numpy().tolist()) <= {0, 1}
    assert not np.array_equal(epochs[0][2].numpy(), epochs[1][2].numpy())  # reshuffled each epoch


def test_randaugment_is_refused_in_a_store():
    with pytest.raises(ValueError, match="'randaugment' cannot be replayed from a seed.*--cache-teacher off"):
        check_replayable("flip,randaugment")


def test_expanded_top_k_gives_back_the_stored_probabilities_and_spreads_the_rest():
    probs = np.array([[0.6, 0.3], [0.5, 0.25]], np.float16)
    indices = np.array([[2, 0], [1, 3]], np.int16)
    z = expand_top_k(probs, indices, 4, 3.0).numpy()
    p = _softmax(z, 3.0)
    expected = np.array([[0.3, 0.05, 0.6, 0.05], [0.125, 0.5, 0.125, 0.25]])
    np.testing.assert_allclose(p, expected, atol=2e-4)
    full = expand_top_k(np.array([[0.1, 0.2, 0.3, 0.4]]), None, 4, 2.0).numpy()
    np.testing.assert_allclose(_softmax(full, 2.0), [[0.1, 0.2, 0.3, 0.4]], rtol=1e-6)


@pytest.mark.parametrize("top_k", [2, "all"])
def test_stored_soft_labels_equal_the_teachers_outputs_on_that_view(teacher, tmp_path, top_k):
    data = _splits()
    store = _store(data, teacher, tmp_path, top_k=top_k).build()
    positions, views = np.array([0, 7, 33]), np.array([2, 0, 1])
    x, _ = example_reader(data, "train")(tf.constant(positions))
    xv = store.policy.images(x, tf.constant(positions), tf.constant(views)).numpy()
    expected = _softmax(teacher.predict(xv, verbose=0).astype(np.float64), 2.0)
    stored = store.read(positions, views)
    if top_k == "all":
        np.testing.assert_allclose(stored[0].astype(np.float64), expected, atol=1e-3)
    else:
        top = np.argsort(-expected, axis=1)[:, :2]
        np.testing.assert_array_equal(stored[1], top)
        np.testing.assert_allclose(stored[0], np.take_along_axis(expected, top, 1), atol=1e-3)


def test_training_batches_carry_the_teachers_view_and_the_labels(teacher, tmp_path, monkeypatch):
    data = _splits()
    store = _store(data, teacher, tmp_path, top_k="all").build()
    inputs, y, w = next(iter(store.dataset(8, seed=3, sample_weight=np.arange(40, dtype=np.float32))))
    for budget in (1000, 0):  # larger stores: rows gathered from memory and expanded per batch; read from disk
        monkeypatch.setattr(view_store, "IN_MEMORY_BYTES", budget)
        other = next(iter(store.dataset(8, seed=3)))[0]["teacher_outputs"][0]
        np.testing.assert_allclose(other.numpy(), inputs["teacher_outputs"][0].numpy(), rtol=1e-6)
    assert set(inputs) == {"x", "teacher_outputs"} and len(inputs["teacher_outputs"]) == 1
    expected = _softmax(teacher.predict(inputs["x"].numpy(), verbose=0).astype(np.float64), 2.0)
    np.testing.assert_allclose(_softmax(inputs["teacher_outputs"][0].numpy(), 2.0), expected, atol=1e-3)
    assert set(y.numpy().tolist()) <= {-1, 0, 1, 2, 3} and len(w) == 8


def test_a_feature_term_reads_the_teachers_tapped_map_on_that_view_from_the_store(teacher, tmp_path):
    data = _splits()
    distiller = Distiller(tiny_cnn(4, 8, "student", seed=2), teacher, temperature=2.0, alpha=0.5, distill="dist,at:30@conv/conv")
    store = ViewStore.for_distiller(distiller, data, "flip,crop,mixup", views=2, top_k="all", cache_dir=str(tmp_path), batch_size=16).build()
    inputs, _ = next(iter(store.dataset(8, seed=1)))
    probabilities, tapped = inputs["teacher_outputs"]
    assert tapped.shape == (8,) + INPUT_SHAPE[:2] + (16,)  # the teacher's conv map, full channels (float32)
    np.testing.assert_allclose(tapped.numpy(), keras.Model(teacher.inputs, teacher.get_layer("conv").output)(inputs["x"]).numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_softmax(probabilities.numpy(), 2.0), _softmax(teacher(inputs["x"]).numpy(), 2.0), atol=1e-3)
    distiller.compile(keras.optimizers.Adam(1e-3))
    assert np.isfinite(distiller.fit(store.dataset(8, seed=1), steps_per_epoch=2, epochs=1, verbose=0).history["loss"][0])


def test_the_store_is_reused_and_invalidated_when_teacher_data_or_policy_changes(teacher, tmp_path):
    data = _splits()
    first = _store(data, teacher, tmp_path).build()
    assert not first.reused and _store(data, teacher, tmp_path).build().reused
    other_teacher = tiny_cnn(16, 32, "teacher", seed=9)
    changed = [_store(data, other_teacher, tmp_path), _store(_splits(seed=1), teacher, tmp_path),
               _store(data, teacher, tmp_path, policy="flip"), _store(data, teacher, tmp_path, views=2)]
    assert len({first.path} | {s.path for s in changed}) == 5
    with pytest.raises(ValueError, match="was written for another policy than this run's"):
        _store(data, teacher, tmp_path, policy="flip", path=first.path).build()


def test_a_killed_pass_resumes_where_it_stopped_and_matches_a_whole_pass(teacher, tmp_path):
    data = _splits()
    whole = _store(data, teacher, tmp_path / "whole").build()
    killed = _store(data, teacher, tmp_path / "killed")
    calls, original = {"n": 0}, killed.teacher_fn

    def dies_in_second_batch(x):
        calls["n"] += 1
        if calls["n"] == 3:  # the probe, batch one (its 3 views at once), then batch two
            raise KeyboardInterrupt  # what a kill leaves: the first batch on disk, no store
        return original(x)

    killed.teacher_fn = dies_in_second_batch
    with pytest.raises(KeyboardInterrupt):
        killed.build()
    assert not killed.complete and os.path.exists(killed.path + ".partial/progress.json")
    resumed = _store(data, teacher, tmp_path / "killed")
    resumed.teacher_fn, calls["n"] = dies_in_second_batch, 100
    resumed.build()
    assert resumed.resumed_at == 16 and resumed.complete and calls["n"] == 100 + 1 + 2  # the probe, batches 2 and 3 only
    p, v = np.repeat(np.arange(40), 3), np.tile(np.arange(3), 40)
    for a, b in zip(whole.read(p, v), resumed.read(p, v)):
        np.testing.assert_array_equal(a, b)


def test_a_full_disk_is_one_line_and_the_pass_resumes(teacher, tmp_path, monkeypatch):
    data = _splits()
    store = _store(data, teacher, tmp_path)
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    with pytest.raises(OSError, match="No space left on the device while writing the view store") as error:
        store.build()
    assert "\n" not in str(error.value)
    monkeypatch.setattr(os, "pwrite", real)
    assert _store(data, teacher, tmp_path).build().complete


@pytest.mark.parametrize("views, top_k, match", [
    (0, 2, "Expected views >= 1"), (2, 5, r"top_k between 1 and the number of classes \(4\)"), (2, 0, "top_k between"),
])
def test_bad_views_and_top_k_are_refused(teacher, tmp_path, views, top_k, match):
    with pytest.raises(ValueError, match=match):
        _store(_splits(), teacher, tmp_path, views=views, top_k=top_k)


@pytest.mark.parametrize("text, match", [("views", "views:K"), ("views:0", "K >= 1"), ("views:4:x", "TOPK >= 1 or 'all'")])
def test_bad_cache_teacher_views_options_are_one_line_each(text, match):
    with pytest.raises(ValueError, match=match):
        parse_views_option(text)
    assert parse_views_option("views:8:all") == (8, "all") and parse_views_option("views:2") == (2, None)


def test_a_store_larger_than_allowed_is_refused_before_writing(teacher, tmp_path):
    store = _store(_splits(), teacher, tmp_path)
    with pytest.raises(ValueError, match="would take .* MiB .* above max_bytes=10"):
        store.build(max_bytes=10)
    assert not os.path.exists(store.path + ".partial")


def test_cached_dataset_with_views_uses_the_store(teacher, tmp_path):
    distiller = Distiller(tiny_cnn(4, 8, "student", seed=2), teacher, temperature=2.0)
    ds = distiller.cached_dataset(_splits(), augment="flip", views=2, top_k=2, cache_dir=str(tmp_path), batch_size=8)
    inputs, _ = next(iter(ds))
    assert inputs["teacher_outputs"][0].shape == (8, CLASSES)
    distiller.compile(keras.optimizers.SGD(0.1))
    assert np.isfinite(distiller.fit(ds, steps_per_epoch=2, epochs=1, verbose=0).history["loss"][0])
    meta = [f for f in os.listdir(tmp_path) if f.startswith("view-store-")]
    assert len(meta) == 1 and json.load(open(tmp_path / meta[0] / "store.json"))["key"]["views"] == 2


@pytest.mark.parametrize("args, message", [
    (["--cache-teacher", "views:0", "--augment", "flip"], "Expected K >= 1 views in --cache-teacher views:K[:TOPK]"),
    (["--cache-teacher", "views:4", "--augment", "flip,randaugment"], "'randaugment' cannot be replayed from a seed"),
    (["--cache-teacher", "views:4"], "--augment is empty"),
    pytest.param(["--cache-teacher", "views:4:11", "--augment", "flip"], "Expected TOPK <= the 10 classes of mnist5k",
                 marks=pytest.mark.slow),  # loads the data and builds the models first
])
def test_bad_view_store_flags_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, args, message):
    import sys

    from helpers import SCRIPTS

    sys.path.insert(0, SCRIPTS)
    import distill

    out = tmp_path / "out"
    assert distill.main([*args, "--output", str(out), "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_a_run_with_a_view_store_records_it_in_the_report(tmp_path):
    from helpers import run_script

    common = ["--dataset", "digits", "--allow-weak-teacher", "--allow-collapse",  # the store is under test, not the data
              "--augment", "flip,crop", "--cache-teacher", "views:2:3", "--teacher-epochs", "1", "--epochs", "1",
              "--prune-epochs", "1", "--no-qat", "--latency-runs", "0", "--cache-dir", str(tmp_path / "cache"), "--verbose", "0"]
    result = run_script("distill.py", *common, "--output", str(tmp_path / "one"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "one" / "report.json").read_text())
    store = report["view_store"]
    assert store["views"] == 2 and store["top_k"] == 3 and store["bytes"] > 0 and not store["reused"]
    assert report["timings"]["view_store_s"] > 0 and "view store: 2 views x" in result.stdout


def test_auto_asks_for_a_store_only_with_a_replayable_augmentation():
    from kdtf.config import DistillConfig
    from kdtf.stages.view_store import store_option, uses_view_store
    from kdtf.view_options import auto_views

    assert auto_views("auto", "flip,crop") == "views:8" and auto_views("auto", "") is None
    assert auto_views("auto", "flip,randaugment") is None and auto_views("off", "flip") is None
    assert uses_view_store(DistillConfig(augment="flip")) and not uses_view_store(DistillConfig())
    assert store_option(DistillConfig(augment="flip", cache_teacher="views:4:2")) == "views:4:2"
    assert not uses_view_store(DistillConfig(augment="flip", cache_teacher="off"))


def test_auto_writes_the_store_only_when_it_fits_the_free_disk(teacher, tmp_path):
    from kdtf.stages.view_store import auto_refusal

    data = _splits()

    def make():
        return _store(data, teacher, tmp_path)  # 40 examples x 3 views x top-2: 16 B per view

    store, why = auto_refusal(make, data, str(tmp_path))
    assert why is None and store.planned_bytes() == 40 * 3 * (2 * 2 + 2 * 2)
    store, why = auto_refusal(make, data, str(tmp_path), share=1e-15)
    assert store is None and why.startswith("the view store would take 0.0 MiB, more than 0% of the")
    assert not os.listdir(tmp_path)  # nothing written when refused
    assert auto_refusal(make, data, "")[1] == "no --cache-dir to write a view store to"
    make().build()
    assert auto_refusal(make, data, str(tmp_path), share=1e-15)[1] is None  # a complete store is reused
