"""Data sets for distillation: offline defaults, TFDS, image folders; keras-cv
augmentation inside tf.data (:mod:`kdtf.data.augment`)."""

from kdtf.data.datasets import (
    Splits,
    keep_labels,
    labelled_dataset,
    load,
    load_unlabeled,
    parse_spec,
    specs,
)

__all__ = ["Splits", "load", "load_unlabeled", "parse_spec", "specs", "keep_labels", "labelled_dataset"]
