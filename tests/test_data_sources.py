"""TFDS (through tfds.testing.mock_data) and image folders (PNGs written to tmp_path)."""


import numpy as np
import pytest

from kdtf.data import load, load_unlabeled, parse_spec

from helpers import make_folder, write_png


@pytest.mark.slow
def test_folder_of_class_subfolders_loads_resized_normalised_and_split(tmp_path):
    path = make_folder(tmp_path / "pets")
    a = load(f"folder:{path}", image_size=16, seed=1)
    assert a.class_names == ["cat", "dog"] and a.input_shape == (16, 16, 3)
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == 20
    assert a.normalization == "x / 255" and 0 <= a.x_train.min() and a.x_train.max() <= 1
    # labels follow the folders: cats are dark (40..49), dogs bright (140..149)
    assert np.all((a.x_test.mean(axis=(1, 2, 3)) > 0.4) == (a.y_test == 1))
    b = load(f"folder:{path}", image_size=16, seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)


def test_folder_with_split_subfolders_keeps_its_test_split(tmp_path):
    make_folder(tmp_path / "data" / "train", per_class=8)
    make_folder(tmp_path / "data" / "test", per_class=3)
    data = load(f"folder:{tmp_path / 'data'}", image_size=8)
    assert len(data.x_test) == 6 and len(data.x_train) + len(data.x_val) == 16


def test_folder_skips_unreadable_images_and_counts_them(tmp_path, caplog):
    path = make_folder(tmp_path / "pets")
    (tmp_path / "pets" / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    data = load(f"folder:{path}", image_size=8)
    assert "Skipped 1 unreadable image" in caplog.text
    assert data.meta["skipped"] == 1 and data.meta["skipped_examples"][0].endswith("broken.jpg")
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 20


@pytest.mark.parametrize(
    "layout, message",
    [
        ("missing", "Image folder not found"),
        ("empty", "has no class subfolders"),
        ("loose", "It holds 2 loose image"),
        ("one_class", "has 1 class subfolder"),
        ("empty_class", "holds no images"),
        ("all_corrupt", "No readable image in class folder"),
        ("split_mismatch", "every split needs the same class subfolders"),
    ],
)
def test_bad_folders_are_refused_naming_the_path(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout != "missing":
        root.mkdir()
    if layout == "loose":
        write_png(str(root / "a.png"), 1)
        write_png(str(root / "b.png"), 2)
    if layout == "one_class":
        write_png(str(root / "cat" / "a.png"), 1)
    if layout == "empty_class":
        make_folder(root)
        (root / "fox").mkdir()
    if layout == "all_corrupt":
        make_folder(root)
        (root / "fox").mkdir()
        (root / "fox" / "x.png").write_bytes(b"garbage")
    if layout == "split_mismatch":
        make_folder(root / "train")
        make_folder(root / "test", classes=("cat", "owl"))
    with pytest.raises(ValueError, match=message) as error:
        load(f"folder:{root}", image_size=8)
    assert "data" in str(error.value)


@pytest.mark.parametrize("spec", ["mnist", "folder:", "tfds:", "tfds:a:b:c", "csv:x", None])
def test_unknown_specs_are_refused(spec):
    with pytest.raises(ValueError, match="data set spec"):
        parse_spec(spec)


def test_tfds_spec_reads_all_splits_and_class_names_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=30):  # streamed: read while the data is there
        data = load("tfds:mnist", seed=0)
        again = load("tfds:mnist", seed=0)
        x_train = data.x_train
    assert data.input_shape == (28, 28, 1) and data.class_names == [str(i) for i in range(10)]
    assert data.name == "tfds:mnist" and data.normalization == "x / 255"
    assert 0 <= x_train.min() and x_train.max() <= 1 and x_train.max() > 0.5
    assert data.size("train") + data.size("val") + data.size("test") == 30
    np.testing.assert_array_equal(data.y_test, again.y_test)


def test_tfds_spec_resizes_to_image_size_and_channels(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=20):
        data = load("tfds:mnist", image_size=32, channels=3, cache_dir=str(tmp_path))
    assert data.input_shape == (32, 32, 3) and data.x_test.shape[1:] == (32, 32, 3)  # read from the cache


def test_tfds_without_prepared_data_says_what_to_do(tmp_path):
    with pytest.raises(ValueError, match=r"'mnist' is not prepared in .*nodata.*tfds build mnist --data_dir DIR.*--data-dir"):
        load("tfds:mnist", data_dir=str(tmp_path / "nodata"))


def test_unknown_tfds_name_is_refused():
    with pytest.raises(ValueError, match="Unknown TFDS data set 'no_such_set'"):
        load("tfds:no_such_set")


def test_unlabeled_folder_transfer_set_reads_every_image(tmp_path):
    make_folder(tmp_path / "unlabeled", per_class=3)
    write_png(str(tmp_path / "unlabeled" / "loose.png"), 7)
    x = load_unlabeled(f"folder:{tmp_path / 'unlabeled'}", image_size=8, channels=1)
    assert x.shape == (7, 8, 8, 1) and x.max() <= 1


def test_builtin_data_can_be_resized_for_backbones():
    data = load("digits", image_size=32, channels=3)
    assert data.input_shape == (32, 32, 3) and data.x_train.max() <= 1.0
