"""How the teacher stage trains when its flags are left at ``auto`` (pure Python, no
TensorFlow): ``--teacher-epochs 0`` and ``--teacher-augment auto``.

A teacher trained from scratch on a small photo folder (images above 28 px, no
``--teacher-weights``) gets:

* **augmentation** ``flip,crop`` (:mod:`kdtf.data.augment`) in its own pipeline, unless
  ``--augment`` is given (the teacher then sees the run's augmentation). A few hundred
  photos and a 1 M-parameter teacher: without it the teacher memorises the training
  split and ends below the 60 k-parameter student it should teach.
* **at least** :data:`PHOTO_TEACHER_MIN_STEPS` **optimizer steps**: a folder of 355
  training photos is 6 steps an epoch at batch 64, so the 12 default epochs are 72 steps,
  far from convergence for the teacher (and augmented batches need more).

Only the teacher changes: the students keep ``--augment`` and ``--epochs``. The bundled
sets (28 px and less) keep 12 epochs and the run's ``--augment``. An explicit
``--teacher-epochs N`` or ``--teacher-augment NAMES|none`` always wins. Figures:
``benchmarks/results/photo_defaults/``.
"""

import math

from kdtf import catalog
from kdtf.config import is_model_file
from kdtf.defaults import AUTO, DEFAULT_TEACHER_EPOCHS, photo_sized

__all__ = ["DEFAULT_TEACHER_EPOCHS", "PHOTO_TEACHER_AUGMENT", "PHOTO_TEACHER_MIN_STEPS", "photo_teacher_recipe",
           "resolve_teacher_training"]

PHOTO_TEACHER_AUGMENT = "flip,crop"
PHOTO_TEACHER_MIN_STEPS = 480


def photo_teacher_recipe(config, input_shape):
    """True when the photo defaults apply: images above :data:`kdtf.defaults.SMALL_IMAGE` px and a
    teacher trained here from scratch (not a model file, no ``--teacher-weights``)."""
    return photo_sized(input_shape) and not is_model_file(config.teacher) and not config.teacher_weights


def resolve_teacher_training(config, input_shape, steps_per_epoch, log=print):
    """Sets ``config.teacher_epochs`` (``0``: auto) and ``config.teacher_augment``
    (``auto``) for the run and logs one line when a photo default was applied.

    Args:
        config: the :class:`kdtf.config.DistillConfig` (changed in place).
        input_shape: ``(height, width, channels)`` of the images.
        steps_per_epoch: optimizer steps of one teacher epoch.
        log: the progress-line function.

    Returns:
        The line logged (also for ``report.json``), or ``""`` when no photo default applied.
    """
    photo = photo_teacher_recipe(config, input_shape)
    applied = []
    if config.teacher_augment == AUTO:
        config.teacher_augment = PHOTO_TEACHER_AUGMENT if photo and not catalog.parse_augment(config.augment) else config.augment
        if photo and config.teacher_augment == PHOTO_TEACHER_AUGMENT and not config.augment:
            applied.append(f"augmentation {PHOTO_TEACHER_AUGMENT} (teacher only)")
    if config.teacher_epochs == 0:
        config.teacher_epochs = DEFAULT_TEACHER_EPOCHS
        if photo:
            needed = math.ceil(PHOTO_TEACHER_MIN_STEPS / max(int(steps_per_epoch), 1))
            if needed > DEFAULT_TEACHER_EPOCHS:
                config.teacher_epochs = needed
                applied.append(f"{needed} epochs (at least {PHOTO_TEACHER_MIN_STEPS} optimizer steps; "
                               f"{steps_per_epoch} an epoch)")
    if not applied:
        return ""
    side = "x".join(str(int(d)) for d in input_shape[:2])
    line = (f"teacher defaults for photos: {' and '.join(applied)}, because a teacher trained from scratch on {side} "
            "images overfits a small folder in the default 12 epochs (--teacher-epochs / --teacher-augment choose others)")
    log(line)
    return line
