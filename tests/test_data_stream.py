"""The streaming data layer: splits as descriptions, the image cache, tf.data pipelines,
the teacher-output cache and streamed evaluation."""

import os

import numpy as np
import pytest

from kdtf import keras
from kdtf._keras import tf
from kdtf.data import keep_labels, labelled_dataset, load
from kdtf.data.image_cache import cached_images
from kdtf.data.rowfile import RowReader, write_rows
from kdtf.data.teacher_cache import (
    attach_teacher_outputs,
    cached_teacher_outputs,
    teacher_cache_path,
    write_teacher_outputs,
)

CLASSES = ("ant", "bee", "cat")


def write_jpeg(path, value, size=24):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(value)
    image = np.clip(value + rng.integers(-3, 4, (size, size, 3)), 0, 255).astype(np.uint8)
    tf.io.write_file(path, tf.io.encode_jpeg(image, quality=95))


def make_folder(root, per_class=12, corrupt=False):
    """``per_class`` JPEGs per class, each a distinct brightness; ``corrupt`` adds a
    garbage file and a truncated JPEG (which passes a header check)."""
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            write_jpeg(os.path.join(root, name, f"{i:03d}.jpg"), 20 + 70 * c + 3 * i)
    if corrupt:
        with open(os.path.join(root, "ant", "garbage.jpg"), "wb") as f:
            f.write(b"not an image at all")
        good = tf.io.encode_jpeg(np.full((24, 24, 3), 9, np.uint8)).numpy()
        with open(os.path.join(root, "bee", "truncated.jpg"), "wb") as f:
            f.write(good[: len(good) // 2])
    return str(root)


def old_split(examples, y, seed=0, val_fraction=0.1, test_fraction=0.1):
    """The split of the in-memory loader that streaming replaced (kdtf before issue 14,
    ``_splits_from_parts`` for one pool), applied to any per-example array."""
    from sklearn.model_selection import train_test_split

    def take(x, y, fraction):
        stratify = y if np.bincount(y).min() >= 2 and round(fraction * len(y)) >= len(np.unique(y)) else None
        x_rest, x_out, y_rest, y_out = train_test_split(x, y, test_size=fraction, random_state=seed, stratify=stratify)
        return x_rest, y_rest, x_out, y_out

    x_rest, y_rest, x_test, y_test = take(examples, y, test_fraction)
    x_train, y_train, x_val, y_val = take(x_rest, y_rest, val_fraction / (1 - test_fraction))
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def all_batches(ds):
    return [tuple(t.numpy() for t in element) for element in ds]


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "bugs")


@pytest.mark.parametrize("spec", ["mnist5k", "digits"])
def test_bundled_splits_are_identical_to_the_in_memory_loader(spec):
    from kdtf.data.loaders import _bundled_arrays

    x, y, scale = _bundled_arrays(spec)
    reference = old_split(np.asarray(x, np.float32) / np.float32(scale), y, seed=3)
    data = load(spec, seed=3)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(data.arrays(split)[0], reference[split][0])
        np.testing.assert_array_equal(getattr(data, f"y_{split}"), reference[split][1])


@pytest.mark.parametrize("cache", [True, False])
def test_folder_split_membership_and_order_are_identical_to_the_in_memory_loader(tmp_path, folder, cache):
    from kdtf.data.folder import list_class_folders

    files, labels = list_class_folders(folder)[0]["all"]
    reference = old_split(np.asarray(files), labels, seed=5)
    data = load(f"folder:{folder}", image_size=16, seed=5, cache_dir=str(tmp_path / "cache") if cache else None)
    for split in ("train", "val", "test"):
        assert data.describe(split, np.arange(data.size(split))) == list(reference[split][0])
        np.testing.assert_array_equal(getattr(data, f"y_{split}"), reference[split][1])


def test_corrupt_images_are_skipped_before_the_split_and_counted_from_the_cache(tmp_path, caplog):
    from kdtf.data.folder import list_class_folders

    path = make_folder(tmp_path / "bugs", corrupt=True)
    files, labels = list_class_folders(path)[0]["all"]
    readable = [i for i, f in enumerate(files) if not f.endswith(("garbage.jpg", "truncated.jpg"))]
    reference = old_split(np.asarray(files)[readable], labels[readable], seed=0)
    for built in (1, 0):  # the second load reads the count from the cache, decoding nothing
        caplog.clear()
        data = load(f"folder:{path}", image_size=16, cache_dir=str(tmp_path / "cache"))
        assert "Skipped 2 unreadable image(s)" in caplog.text
        assert data.meta["skipped"] == 2 and data.meta["image_cache"]["built"] == built
        assert sorted(os.path.basename(p) for p in data.meta["skipped_examples"]) == ["garbage.jpg", "truncated.jpg"]
        assert data.describe("test", np.arange(data.size("test"))) == list(reference["test"][0])


def test_without_a_cache_a_check_of_first_and_last_bytes_skips_garbage_and_truncated_files(tmp_path, caplog):
    path = make_folder(tmp_path / "bugs", corrupt=True)
    data = load(f"folder:{path}", image_size=16)
    assert "Skipped 2 unreadable image" in caplog.text
    assert data.meta["skipped"] == 2
    assert sum(len(x) for s in ("train", "val", "test") for x, _ in data.dataset(s, 8)) == 36


def test_without_a_cache_a_file_that_fails_to_decode_is_dropped_and_arrays_say_why(tmp_path):
    path = make_folder(tmp_path / "bugs")
    damaged = os.path.join(path, "cat", "000.jpg")
    with open(damaged, "rb") as f:
        head = f.read(20)
    with open(damaged, "wb") as f:  # a JPEG signature and end marker around garbage
        f.write(head + bytes(range(256)) * 4 + b"\xff\xd9")
    data = load(f"folder:{path}", image_size=16)
    assert data.meta["skipped"] == 0
    assert sum(len(x) for s in ("train", "val", "test") for x, _ in data.dataset(s, 8)) == 35
    split = next(s for s in ("train", "val", "test") if damaged in data.describe(s, np.arange(data.size(s))))
    with pytest.raises(ValueError, match="failed to decode while streaming.*cache_dir"):
        getattr(data, f"x_{split}")


def test_cache_is_reused_and_invalidated_when_a_file_changes(tmp_path, folder):
    cache = str(tmp_path / "cache")
    first = load(f"folder:{folder}", image_size=16, cache_dir=cache)
    again = load(f"folder:{folder}", image_size=16, cache_dir=cache)
    assert (first.meta["image_cache"]["built"], again.meta["image_cache"]["reused"]) == (1, 1)
    assert first.fingerprint("train") == again.fingerprint("train")
    changed = os.path.join(folder, "cat", "000.jpg")
    write_jpeg(changed, 250)
    stat = os.stat(changed)
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = load(f"folder:{folder}", image_size=16, cache_dir=cache)
    assert after.meta["image_cache"]["built"] == 1 and after.fingerprint("train") != first.fingerprint("train")
    split = next(s for s in ("train", "val", "test") if changed in after.describe(s, np.arange(after.size(s))))
    position = after.describe(split, np.arange(after.size(split))).index(changed)
    assert after.take(split, [position])[0].mean() > 0.9  # the new, bright pixels


def test_an_interrupted_cache_build_leaves_nothing_that_is_trusted(tmp_path):
    cache = str(tmp_path / "cache")

    def check(i, x):
        tf.debugging.assert_less(i, tf.constant(100, tf.int64))
        return i, x

    def dying():
        return tf.data.Dataset.range(200).map(lambda i: (i, tf.fill((4, 4, 1), tf.cast(i, tf.uint8)))).map(check)

    with pytest.raises(ValueError, match="Could not decode the images of 'toy'"):
        cached_images(cache, "toy", ["toy", 1], 200, (4, 4, 1), dying)
    assert os.listdir(cache) == []
    good = lambda: tf.data.Dataset.range(200).map(lambda i: (i, tf.fill((4, 4, 1), tf.cast(i, tf.uint8))))
    reader, skipped, built = cached_images(cache, "toy", ["toy", 1], 200, (4, 4, 1), good)
    assert built and len(skipped) == 0 and reader.read([150])[0, 0, 0, 0] == 150


def test_row_file_reads_any_positions_and_is_a_plain_npy(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (50, 3, 2)).astype(np.uint8)
    path = str(tmp_path / "rows.npy")
    with write_rows(path, 60, (3, 2), np.uint8) as writer:
        writer.append(x[:20])
        writer.append(x[20:])
        writer.shrink(50)
    np.testing.assert_array_equal(np.load(path), x)
    positions = [49, 0, 7, 7, 8, 9, 3]
    np.testing.assert_array_equal(RowReader(path).read(positions), x[positions])


@pytest.mark.parametrize("cache", [True, False])
def test_with_index_yields_each_example_once_with_its_own_image_and_label(tmp_path, folder, cache):
    data = load(f"folder:{folder}", image_size=16, cache_dir=str(tmp_path / "c") if cache else None)
    x_all, y_all = data.arrays("train")
    ordered = all_batches(data.dataset("train", 8, with_index=True))
    np.testing.assert_array_equal(np.concatenate([b[2] for b in ordered]), np.arange(data.size("train")))
    ds = data.dataset("train", 8, shuffle=True, seed=1, with_index=True)
    epochs = [all_batches(ds) for _ in range(2)]
    for batches in epochs:
        index = np.concatenate([b[2] for b in batches])
        assert sorted(index.tolist()) == list(range(data.size("train")))
        np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x_all[index])
        np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y_all[index])
    assert not np.array_equal(epochs[0][0][2], epochs[1][0][2])  # reshuffled each epoch


def test_shards_split_the_files_between_workers(tmp_path, folder):
    data = load(f"folder:{folder}", image_size=16, cache_dir=str(tmp_path / "c"))
    shards = [
        np.concatenate([b[2] for b in all_batches(data.dataset("train", 4, shuffle=True, with_index=True, shard=(2, w)))])
        for w in (0, 1)
    ]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(np.concatenate(shards).tolist()) == list(range(data.size("train")))
    with pytest.raises(ValueError, match="shard=\\(num_workers, worker_index\\)"):
        data.dataset("train", 4, shard=(2, 2))


def test_labelled_only_matches_the_in_memory_labelled_dataset():
    data = load("mnist5k")
    data.y_train = keep_labels(data.y_train, 500, seed=0)
    keras.utils.set_random_seed(0)
    legacy, _ = labelled_dataset(data.x_train, data.y_train, 64, 10, seed=0)
    old = [b for b in legacy.take(12)]
    keras.utils.set_random_seed(0)
    new = [b for b in data.dataset("train", 64, shuffle=True, seed=0, repeat=True, labelled_only=True).take(12)]
    for (xo, yo), (xn, yn) in zip(old, new):
        np.testing.assert_array_equal(xo.numpy(), xn.numpy())
        np.testing.assert_array_equal(yo.numpy(), yn.numpy())
    assert all((y.numpy() >= 0).all() for _, y in new)


def test_shuffled_training_batches_match_the_in_memory_pipeline():
    data = load("digits", seed=1)
    x, y = data.arrays("train")
    keras.utils.set_random_seed(0)
    old = all_batches(tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=4, reshuffle_each_iteration=True).batch(32))
    keras.utils.set_random_seed(0)
    new = all_batches(data.dataset("train", 32, shuffle=True, seed=4))
    for a, b in zip(old, new):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_sample_is_bounded_seeded_and_arrays_refuse_large_splits(tmp_path, folder):
    data = load(f"folder:{folder}", image_size=16, cache_dir=str(tmp_path / "c"))
    x, y = data.sample("train", 10**6)
    np.testing.assert_array_equal(y, data.y_train)  # drawn in split order
    assert x.shape == (data.size("train"), 16, 16, 3) and x.dtype == np.float32 and x.max() <= 1
    a, b = data.sample("train", 5, seed=2), data.sample("train", 5, seed=2)
    np.testing.assert_array_equal(a[0], b[0])
    assert len(a[0]) == 5 and not np.array_equal(a[0], data.sample("train", 5, seed=3)[0])
    with pytest.raises(ValueError, match="Iterate over Splits.dataset"):
        data.arrays("train", max_bytes=1000)


def test_unlabeled_transfer_set_is_appended_with_label_minus_one(tmp_path, folder):
    make_folder(tmp_path / "extra", per_class=2)
    data = load(f"folder:{folder}", image_size=16, cache_dir=str(tmp_path / "c"))
    train = data.size("train")
    assert data.add_unlabeled(f"folder:{tmp_path / 'extra'}") == 6
    assert data.size("train") == train + 6 and (data.y_train[train:] == -1).all()
    labelled = np.concatenate([b[1] for b in all_batches(data.dataset("train", 8, labelled_only=True))])
    assert len(labelled) == train and (labelled >= 0).all()
    mnist = load("mnist5k")  # in memory, with a folder transfer set resized to 28x28x1
    mnist.add_unlabeled(f"folder:{tmp_path / 'extra'}")
    assert mnist.sample("train", 5000)[0].shape == (mnist.size("train"), 28, 28, 1)


def test_tfds_with_and_without_cache_give_the_same_splits_and_pixels(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        cached = load("tfds:mnist", seed=2, cache_dir=str(tmp_path / "c"))
        streamed = load("tfds:mnist", seed=2)
        for split in ("train", "test"):
            np.testing.assert_array_equal(getattr(cached, f"y_{split}"), getattr(streamed, f"y_{split}"))
            batches = all_batches(streamed.dataset(split, 8, with_index=True, shuffle=True))
            index = np.concatenate([b[2] for b in batches])
            assert sorted(index.tolist()) == list(range(streamed.size(split)))
            np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), cached.arrays(split)[0][index])


def _teacher():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    feature = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    logits = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(feature))
    return keras.Model(inputs, [logits, feature])


def test_teacher_outputs_cached_on_disk_follow_their_examples_through_shuffling(tmp_path, folder):
    data = load(f"folder:{folder}", image_size=16, cache_dir=str(tmp_path / "c"))
    teacher = _teacher()
    teacher_fn = lambda x: [o.numpy() for o in teacher(x, training=False)]
    path = teacher_cache_path(str(tmp_path / "c"), data.fingerprint("train"), "teacher-v1")
    paths = write_teacher_outputs(teacher_fn, data.dataset("train", 8, with_index=True), data.size("train"), path)
    assert [np.load(p).shape for p in paths] == [(data.size("train"), 3), (data.size("train"), 14, 14, 4)]
    ds = attach_teacher_outputs(data.dataset("train", 8, shuffle=True, seed=3, with_index=True), paths)
    for inputs, _ in ds:
        expected = teacher_fn(inputs["x"])
        for cached, fresh in zip(inputs["teacher_outputs"], expected):
            np.testing.assert_allclose(cached.numpy(), fresh, rtol=1e-5, atol=1e-6)
    def no_teacher(x):
        raise AssertionError("the cache at this key is complete; the teacher must not run again")

    assert cached_teacher_outputs(no_teacher, data.dataset("train", 8, with_index=True), data.size("train"), path) == paths
    with pytest.raises(ValueError, match="conv: 3,136 B per example.*max_bytes=1000"):
        write_teacher_outputs(teacher_fn, data.dataset("train", 8, with_index=True), data.size("train"),
                              str(tmp_path / "small"), names=["logits", "conv"], max_bytes=1000)
    assert not os.path.exists(tmp_path / "small")


def test_with_index_refuses_augmentation(folder):
    data = load(f"folder:{folder}", image_size=16)
    with pytest.raises(ValueError, match="with_index=True without augmentation"):
        data.dataset("train", 8, with_index=True, augment="flip")


def test_accuracy_and_litert_evaluation_stream_the_same_numbers_as_arrays(tmp_path, folder):
    from kdtf import export
    from kdtf.data import accuracy, outputs_and_labels

    data = load(f"folder:{folder}", image_size=16, cache_dir=str(tmp_path / "c"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    x, y = data.arrays("train")
    expected = np.mean(model.predict(x, verbose=0).argmax(-1) == y)
    assert accuracy(model, data.dataset("train", 7)) == pytest.approx(expected)
    logits, labels = outputs_and_labels(model.predict_on_batch, data.dataset("train", 7, shuffle=True))
    assert np.mean(logits.argmax(-1) == labels) == pytest.approx(expected)
    flatbuffer = export.to_tflite(model, "float32")
    arrays = export.evaluate(flatbuffer, x, y, keras_model=model, batch_size=5)
    streamed = export.evaluate(flatbuffer, data.dataset("train", 5), keras_model=model)
    assert streamed == pytest.approx(arrays) and streamed["examples"] == len(x)


@pytest.mark.slow
def test_byol_views_stream_from_splits_in_full_batches(folder):
    from kdtf.data.augment import byol_views

    data = load(f"folder:{folder}", image_size=16)
    batches = list(byol_views(data, 8, seed=0))
    assert len(batches) == data.size("train") // 8
    assert all(v1.shape == (8, 16, 16, 3) and v2.shape == (8, 16, 16, 3) for v1, v2 in batches)


@pytest.mark.slow
def test_export_for_android_calibrates_on_a_sample_and_evaluates_a_stream(tmp_path, folder):
    from kdtf import export

    data = load(f"folder:{folder}", image_size=16, cache_dir=str(tmp_path / "c"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(), keras.layers.Dense(3)])
    card = export.export_for_android(model, str(tmp_path / "a" / "m.tflite"), splits=data, representative_examples=10)
    assert card["metrics_on_litert"]["examples"] == data.size("test") and card["metrics_on_litert"]["agreement"] >= 0.8
    x, y = data.arrays("test")
    plain = export.export_for_android(model, str(tmp_path / "b" / "m.tflite"), representative=data.arrays("train")[0],
                                      evaluation=(x, y), class_names=list(CLASSES), normalization="x / 255")
    assert plain["metrics_on_litert"]["examples"] == len(x) and plain["class_names"] == list(CLASSES)


def test_fast_jpeg_decoding_is_close_to_an_antialiased_resize(tmp_path):
    from kdtf.data.decode import decode_file

    yy, xx = np.mgrid[0:256, 0:256]
    image = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.uint8)  # smooth ramps
    path = str(tmp_path / "ramp.jpg")
    tf.io.write_file(path, tf.io.encode_jpeg(image, quality=95))
    for size in (32, 64, 100, 224):
        fast = decode_file(path, size, 3).numpy().astype(np.float32)
        full = tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(path), channels=3), (size, size), antialias=True).numpy()
        assert fast.shape == (size, size, 3) and np.abs(fast - full).mean() < 2.0, size


def test_distributed_dataset_feeds_fit_under_a_strategy(tmp_path, folder):
    data = load(f"folder:{folder}", image_size=16, cache_dir=str(tmp_path / "c"))
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = data.distributed(strategy, "train", 8, shuffle=True, repeat=True)
    history = model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_the_distiller_reads_the_streamed_teacher_cache_like_its_own(tmp_path, folder):
    from kdtf import Distiller, TeacherOutputs

    data = load(f"folder:{folder}", image_size=16, cache_dir=str(tmp_path / "c"))
    keras.utils.set_random_seed(1)
    layers = keras.layers
    student = keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(2, 3, name="conv"), layers.Flatten(), layers.Dense(3)])
    full = _teacher()
    teacher = keras.Model(full.input, full.outputs[0])
    distiller = Distiller(student, teacher, temperature=2.0, alpha=0.5, distill="kd,fitnets:0.5@conv/conv")
    path = teacher_cache_path(str(tmp_path / "c"), data.fingerprint("train"), "t")
    paths = write_teacher_outputs(TeacherOutputs(distiller).predict, data.dataset("train", 16, with_index=True), data.size("train"), path)
    inputs, y = next(iter(attach_teacher_outputs(data.dataset("train", 16, shuffle=True, with_index=True), paths)))
    distiller.compile(keras.optimizers.SGD(0.01))
    cached = distiller.evaluate(tf.data.Dataset.from_tensors((inputs, y)), return_dict=True, verbose=0)
    fresh = distiller.evaluate(inputs["x"], y, batch_size=len(y), return_dict=True, verbose=0)
    for key in ("loss", "student_loss", "distillation_loss", "kd_loss", "fitnets_loss"):
        np.testing.assert_allclose(cached[key], fresh[key], rtol=1e-5)
    history = distiller.fit(attach_teacher_outputs(data.dataset("train", 16, with_index=True), paths), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.slow
def test_building_the_cache_of_corrupt_jpegs_prints_one_line_and_no_decoder_noise(tmp_path):
    import subprocess
    import sys

    path = make_folder(tmp_path / "bugs", corrupt=True)
    code = (
        "from kdtf.data import load\n"
        f"data = load('folder:{path}', image_size=16, cache_dir={str(tmp_path / 'cache')!r})\n"
        "print(data.meta['skipped'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "2", done.stderr
    assert "JPEG library" not in done.stderr and "data = load" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "Skipped" in line] == [
        f"Skipped 2 unreadable image(s) under 'folder:{path}', e.g. '{path}/ant/garbage.jpg'."
    ]


def test_decoder_noise_is_dropped_and_other_stderr_lines_are_kept(capfd):
    import os

    from kdtf.data.native_stderr import without_decoder_noise

    with without_decoder_noise():
        os.write(2, b"Improper call to JPEG library in state 201\nsomething else went wrong\n")
    assert capfd.readouterr().err == "something else went wrong\n"
