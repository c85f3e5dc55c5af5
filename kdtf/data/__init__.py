"""Data sets for distillation, streamed: offline defaults, TFDS, image folders.

``load(spec)`` returns :class:`Splits`, a description (per split, the examples and their
labels) that opens into ``tf.data`` pipelines with ``Splits.dataset``; folders and TFDS
splits are decoded in parallel inside ``tf.data``, once into an on-disk image cache
(``cache_dir``). keras-cv augmentation runs inside the pipelines
(:mod:`kdtf.data.augment`); teacher outputs travel with the data (:class:`TeacherOutputs`, cached on disk by
example by :mod:`kdtf.data.teacher_cache`), or on K replayable augmented views of each
example (:class:`ViewStore`, :mod:`kdtf.data.view_store`).
"""

from kdtf.data.batches import accuracy, iterate_batches, outputs_and_labels
from kdtf.data.datasets import (
    Splits,
    keep_labels,
    labelled_dataset,
    load,
    load_unlabeled,
    parse_spec,
    specs,
)
from kdtf.data.loaders import BUNDLED
from kdtf.data.teacher_outputs import TeacherOutputs
from kdtf.data.view_store import ViewStore
from kdtf.data.views import ViewPolicy

__all__ = [
    "BUNDLED",
    "Splits",
    "TeacherOutputs",
    "ViewPolicy",
    "ViewStore",
    "accuracy",
    "iterate_batches",
    "keep_labels",
    "labelled_dataset",
    "load",
    "load_unlabeled",
    "outputs_and_labels",
    "parse_spec",
    "specs",
]
