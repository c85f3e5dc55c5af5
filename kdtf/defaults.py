"""The teacher and student a run gets when ``--teacher``/``--student`` are left at
``auto``: they depend on the images, known once the data are loaded (pure Python, no
TensorFlow).

Images of at most 28 px (the bundled ``mnist5k`` and ``digits``) keep ``teacher_cnn`` and
``student_cnn`` (the figures of README and the benchmarks are theirs). Larger images (a
photo folder, ``--image-size 96``, CIFAR, ``cluttered``) get ``photo_teacher`` and
``photo_student`` (:mod:`kdtf.models.photo`): global pooling, so their parameter count
does not grow with the image, BatchNormalization, and a stride-2 stem that keeps a 224 px
teacher stage under 3 GB.
"""

__all__ = ["AUTO", "SMALL_IMAGE", "DEFAULT_TEACHER_EPOCHS", "photo_sized", "default_models", "resolve_models"]

AUTO = "auto"
SMALL_IMAGE = 28  # px: the bundled sets' side; above it, the photo defaults
DEFAULT_TEACHER_EPOCHS = 12  # --teacher-epochs 0 (auto); photos may get more (kdtf.teacher_defaults)
_SMALL = {"teacher": "teacher_cnn", "student": "student_cnn"}
_PHOTO = {"teacher": "photo_teacher", "student": "photo_student"}


def photo_sized(input_shape):
    """True for images (height, width, channels) with a side above :data:`SMALL_IMAGE`
    px: the photo defaults apply (models here, teacher training in
    :mod:`kdtf.teacher_defaults`)."""
    return max(int(d) for d in input_shape[:2]) > SMALL_IMAGE


def default_models(input_shape):
    """``{"teacher": name, "student": name}`` for inputs of ``input_shape`` (height,
    width, channels): the small CNNs up to :data:`SMALL_IMAGE` px, the photo models above."""
    return dict(_PHOTO if photo_sized(input_shape) else _SMALL)


def resolve_models(config, input_shape, log=print):
    """Sets ``config.teacher``/``config.student`` left at ``auto`` to
    :func:`default_models` of ``input_shape`` and logs the choice once. Returns the
    fields it set (``{}`` when both were named)."""
    chosen = {role: name for role, name in default_models(input_shape).items() if getattr(config, role) == AUTO}
    for role, name in chosen.items():
        setattr(config, role, name)
    if chosen:
        side = "x".join(str(int(d)) for d in input_shape[:2])
        kind = f"above {SMALL_IMAGE} px" if photo_sized(input_shape) else f"up to {SMALL_IMAGE} px"
        log(f"models: {', '.join(f'{role} {name}' for role, name in chosen.items())} (the defaults for images "
            f"{kind}; these are {side}; --teacher/--student choose others)")
    return chosen
