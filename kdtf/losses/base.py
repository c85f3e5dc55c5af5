"""The one wrapper every distillation loss class is built on (after Keras's
``LossFunctionWrapper``, ``keras/src/losses/losses.py``): the math is a plain function
``fn(teacher, student, **options)`` returning one value per example; the class holds the
options, validates them once, applies Keras's reduction and serialises exactly its
constructor arguments.
"""

from kdtf._keras import keras

__all__ = ["DistillationLoss"]


class DistillationLoss(keras.losses.Loss):
    """A ``keras.losses.Loss`` around a distillation function.

    ``y_true`` is the teacher's output (logits, feature, embedding), ``y_pred`` the
    student's, so every loss also works in a plain ``student.compile(loss=...)`` on
    precomputed teacher outputs. Options are readable as attributes
    (``KDLoss(temperature=3).temperature``).

    Args:
        fn: ``fn(teacher, student, **options) -> (batch,)`` values.
        reduction: Keras loss reduction (``"auto"``, ``"sum_over_batch_size"``,
            ``"sum"``, ``"none"``); the Distiller honours it too.
        name: loss name.
        **options: keyword arguments of ``fn``, already validated by the subclass.
    """

    def __init__(self, fn, reduction="auto", name=None, **options):
        super().__init__(reduction=reduction, name=name)
        self.fn = fn
        self.options = dict(options)
        for key, value in options.items():
            setattr(self, key, value)

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self.options)

    def get_config(self):
        return dict(super().get_config(), **self.options)
