"""The names kdtf knows, in one light module (no TensorFlow), so the command line can
list them in ``--help`` and check flags before TensorFlow loads.

The distillation terms are read from their registry's source: each is registered by
``@register_term("name")`` on its class in a module of :mod:`kdtf.losses`, and
:func:`kdtf.registry.scan_names` lists those names without importing TensorFlow (a few
milliseconds), so a new term is never listed by hand here. For the other names, each
registry that builds the named things (the model zoo, the augmentations, the strategies,
the data loaders) holds exactly these names; ``tests/test_catalog.py`` checks that they
agree. The compression steps need no copy here: their registry and the modules that
fill it are pure Python (:mod:`kdtf.compress.forms`).
"""

import os

from kdtf.registry import scan_names

__all__ = ["MODELS", "BACKBONES", "ENCODERS", "TERMS", "AUGMENTATIONS", "STRATEGIES", "DATASETS",
           "DATA_PREFIXES", "PTQ_MODES", "data_specs", "parse_augment"]

MODELS = ("teacher_cnn", "student_cnn", "photo_teacher", "photo_student", "resnet18_cifar", "vit_teacher", "vit_student")
BACKBONES = ("efficientnet_b0", "mobilenet_v2", "mobilenet_v2_035", "resnet50")
ENCODERS = ("teacher_encoder", "student_encoder")
TERMS = scan_names(os.path.join(os.path.dirname(os.path.abspath(__file__)), "losses"), "register_term")
AUGMENTATIONS = ("flip", "crop", "randaugment", "jitter", "mixup", "cutmix")
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
PTQ_MODES = ("int8", "int16x8", "int4w")
DATASETS = ("cluttered", "digits", "mnist5k")
DATA_PREFIXES = ("folder", "tfds")


def data_specs():
    """The data set specs, as ``--help`` shows them."""
    return list(DATASETS) + ["folder:PATH", "tfds:NAME[:CONFIG]"]


def parse_augment(text):
    """``"flip,randaugment"`` -> ``["flip", "randaugment"]`` (canonical order);
    ``""``/``"none"``/``None`` -> ``[]``; an unknown name is refused."""
    if text is None:
        return []
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"Unknown augmentation {unknown[0]!r} (--augment). Known: {', '.join(AUGMENTATIONS)}, none")
    return [n for n in AUGMENTATIONS if n in names]
