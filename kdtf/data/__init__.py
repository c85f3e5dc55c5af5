"""Data sets for distillation: offline defaults, split deterministically."""

from kdtf.data.datasets import Splits, keep_labels, labelled_dataset, load, specs

__all__ = ["Splits", "load", "specs", "keep_labels", "labelled_dataset"]
