"""Data sets for distillation: offline defaults, split deterministically."""

from kdtf.data.datasets import Splits, load, specs

__all__ = ["Splits", "load", "specs"]
