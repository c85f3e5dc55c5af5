"""The data of a distillation run: the data set loaded by ``--dataset`` with the run's
labels kept and transfer set added (each logged), its training and validation
pipelines, and what the report says about it."""

from kdtf._keras import tf
from kdtf.data import keep_labels, load
from kdtf.data.augment import mixes_labels
from kdtf.data.target_set import add_target_set
from kdtf.distribute import several_workers
from kdtf.split_sizes import small_split_warning, small_splits

__all__ = ["load_run_data", "training_pipelines", "labelled_pipeline", "validation_pipeline", "data_section"]


def _log_loaded(data, log):
    skipped = f", {data.meta['skipped']} unreadable image(s) skipped" if data.meta.get("skipped") else ""
    log(f"data {data.name}: {data.size('train')} train / {data.size('val')} val / {data.size('test')} test, "
        f"input {data.input_shape}, {data.num_classes} classes{skipped}")
    cache = data.meta.get("image_cache")
    if cache and (cache.get("reused") or cache.get("decoded")):  # the bundled sets in memory have nothing to decode
        seconds = f" in {cache['decode_s']:.1f} s" if cache.get("decode_s") else ""
        log(f"image cache: {'reused' if cache.get('reused') else 'built'}, {cache.get('decoded', 0)} images decoded{seconds}")


def load_run_data(config, log=print):
    """The :class:`kdtf.data.Splits` of ``config.dataset``, with only
    ``config.labels_kept()`` training labels (the rest become ``-1``, an unlabeled
    transfer set), ``--transfer-set`` images added unlabeled and ``--target-set`` images
    added as target rows (label -2); ``data.meta`` gets ``labelled`` and ``transfer_set``
    (and ``target_set``)."""
    data = load(config.dataset, seed=config.seed, image_size=config.image_size or None, data_dir=config.data_dir or None,
                cache_dir=config.cache_dir, val_fraction=config.val_fraction, test_fraction=config.test_fraction)
    _log_loaded(data, log)
    data.meta["small_splits"] = small_splits({split: data.size(split) for split in ("val", "test")})
    warning = small_split_warning(data.meta["small_splits"], {"val": config.val_fraction, "test": config.test_fraction})
    if warning:  # one example moves accuracy by more than a point: said once, recorded in report.json
        log(warning)
    labels = config.labels_kept()
    data.meta["labelled"] = labels or data.size("train")
    if labels:
        data.y_train = keep_labels(data.y_train, labels, seed=config.seed)
        log(f"labels: keeping {labels} labelled training examples (stratified); the other "
            f"{data.size('train') - labels} are an unlabeled transfer set for distillation")
    data.meta.setdefault("transfer_set", 0)
    if config.transfer_set:
        added = data.add_unlabeled(config.transfer_set, data_dir=config.data_dir or None)
        log(f"transfer set {config.transfer_set}: {added} unlabeled images added for distillation")
    if config.target_set:
        added = add_target_set(data, config.target_set, data_dir=config.data_dir or None)
        log(f"target set {config.target_set}: {added} unlabeled target-domain images added (label -2) for the alignment terms")
    if config.augment:
        log(f"augmentation (keras-cv, in tf.data; the teacher sees the same augmented batch): {config.augment}")
    return data


def training_pipelines(config, data):
    """The labelled-only and the whole training pipeline, repeated (fit runs ``steps``
    batches an epoch). Under several workers each reads only its share of the files
    (``Splits.distributed``), in per-replica batches of the global batch."""
    labelled = labelled_pipeline(config, data, config.augment)
    if several_workers():
        whole = data.distributed(tf.distribute.get_strategy(), "train", config.batch_size, shuffle=True, seed=config.seed,
                                 augment=config.augment, repeat=True)
    else:
        whole = data.dataset("train", config.batch_size, shuffle=True, seed=config.seed, augment=config.augment).repeat()
    return labelled, whole


def labelled_pipeline(config, data, augment):
    """The repeated labelled-only training pipeline with ``augment``: ``--augment`` for
    the scratch student (:func:`training_pipelines`), ``--teacher-augment`` for a teacher
    trained with its own (:mod:`kdtf.teacher_defaults`)."""
    options = dict(shuffle=True, seed=config.seed, augment=augment, repeat=True, labelled_only=True)
    if several_workers():
        return data.distributed(tf.distribute.get_strategy(), "train", config.batch_size, **options)
    return data.dataset("train", config.batch_size, **options)


def validation_pipeline(config, data):
    """The validation split; one-hot labels when the training labels are mixed rows
    (MixUp, CutMix)."""
    val_ds = data.dataset("val", config.batch_size)
    if mixes_labels(config.augment):
        val_ds = val_ds.map(lambda x, y: (x, tf.one_hot(y, data.num_classes)))
    return val_ds


def data_section(config, data):
    """The report's ``data`` section: sizes, labels kept, transfer set, augmentation,
    input shape, normalization and class names."""
    return {
        "name": data.name, "train": data.size("train"), "labelled": data.meta["labelled"],
        "transfer_set": data.meta["transfer_set"], "target_set": data.meta.get("target_set", 0), "augment": config.augment,
        "skipped_images": data.meta.get("skipped", 0), "val": data.size("val"), "test": data.size("test"),
        "small_splits": data.meta.get("small_splits", []),
        "image_cache": data.meta.get("image_cache"),
        "input_shape": list(data.input_shape), "normalization": data.normalization, "class_names": data.class_names,
    }
