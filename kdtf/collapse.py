"""Never distil into a collapsed student silently.

A student collapses when training diverges into a constant predictor: its accuracy sits
at chance and it gives one class for (nearly) every input, while the run goes on and
reports the result like any other (SGD at 0.1 on a BatchNormalization-free student did
this under distillation in ``benchmarks/recipes.py``). :func:`diagnose` measures that
on a sample of labelled examples; :func:`check_collapse` turns it into one line naming
the stage, the accuracy and the usual fixes; :class:`CollapseGuard` runs the check at
the end of ``fit`` (:meth:`kdtf.Distiller.fit` adds it, warning by default).

A model is called collapsed when either holds:

* accuracy at chance: below ``chance + margin * (1 - chance)`` (``margin`` 0.05: 14.5 %
  for 10 classes, 52.5 % for 2), or
* one class predicted for at least ``share`` (0.95) of the inputs while that class
  makes up less than 80 % of the labels (or the labels are unknown).

Fewer than ``min_examples`` (30) measured inputs decide nothing: on a handful of
validation images a healthy model can look like either.
"""

import dataclasses
import logging
import warnings

import numpy as np

from kdtf._keras import keras, tf

__all__ = ["CollapseError", "CollapseGuard", "Diagnosis", "diagnose", "check_collapse", "with_guard", "FIXES"]

FIXES = ("lower the learning rate (e.g. --lr 0.01 for SGD), a warm-up (--warmup-epochs), "
         "gradient clipping (optimizer global_clipnorm=1.0)")

_log = logging.getLogger(__name__)


class CollapseError(FloatingPointError):
    """Raised when a trained model predicts at chance or one class for nearly every input
    (training diverged, like :class:`kdtf.callbacks.NonFiniteLossError`; the command-line
    scripts print it as one line)."""


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` measured.

    Attributes:
        accuracy: top-1 accuracy on the labelled examples (``None`` without labels).
        chance: ``1 / num_classes``.
        top_class: the class predicted most often; ``top_share``: its share of the inputs.
        examples: how many inputs were measured.
        collapsed: whether either rule of the module docstring holds.
    """

    accuracy: float
    chance: float
    top_class: int
    top_share: float
    examples: int
    collapsed: bool

    def describe(self, stage):
        """One line: the stage, what was measured, the usual fixes."""
        accuracy = "" if self.accuracy is None else f"accuracy {self.accuracy:.1%} (chance {self.chance:.1%}), "
        return (f"{stage}: the model collapsed: {accuracy}class {self.top_class} predicted for {self.top_share:.0%} of "
                f"{self.examples} inputs. Usual fixes: {FIXES}.")


def diagnose(predictions, labels=None, num_classes=None, margin=0.05, share=0.95, min_examples=30):
    """Measures collapse from model outputs.

    Args:
        predictions: ``(n, classes)`` logits or probabilities.
        labels: sparse ``(n,)`` or one-hot ``(n, classes)`` labels; ``-1`` (unlabeled) and
            all-zero rows are left out of the accuracy; ``None``: class shares only.
        num_classes: defaults to the width of ``predictions``.
        margin: accuracy below ``chance + margin * (1 - chance)`` is at chance.
        share: one class predicted for at least this share of inputs is a constant
            predictor (unless the labels are that unbalanced).
        min_examples: with fewer inputs (labelled ones for the accuracy) nothing is
            called collapsed.

    Returns:
        A :class:`Diagnosis`.
    """
    predictions = np.asarray(predictions)
    num_classes = int(num_classes or predictions.shape[-1])
    chance = 1.0 / num_classes
    predicted = predictions.argmax(-1)
    counts = np.bincount(predicted, minlength=num_classes)
    top_class, top_share = int(counts.argmax()), float(counts.max() / max(len(predicted), 1))
    accuracy, label_share, labelled = None, 0.0, 0
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[-1] > 1:
            keep = labels.sum(-1) > 0
            labels = np.where(keep, labels.argmax(-1), -1)
        labels = labels.reshape(-1).astype(np.int64)
        keep = labels >= 0
        labelled = int(keep.sum())
        if keep.any():
            accuracy = float(np.mean(predicted[keep] == labels[keep]))
            label_share = float(np.mean(labels[keep] == top_class))
    at_chance = accuracy is not None and labelled >= min_examples and accuracy < chance + margin * (1.0 - chance)
    constant = top_share >= share and label_share < 0.8 and num_classes > 1 and len(predicted) >= min_examples
    return Diagnosis(accuracy, chance, top_class, top_share, int(len(predicted)), bool(at_chance or constant))


def check_collapse(model, x, labels=None, stage="training", num_classes=None, action="raise", batch_size=256, hint=""):
    """Predicts ``x`` with ``model`` and acts on a collapse.

    Args:
        model: a Keras model producing logits or probabilities.
        x: inputs (numpy array, or a ``tf.data`` dataset of ``x`` or ``(x, y)``).
        labels: labels of ``x`` (or ``None``: taken from a dataset of ``(x, y)``).
        stage: named in the message, e.g. ``"distilled"``.
        action: ``"raise"`` (:class:`CollapseError`), ``"warn"`` (a ``UserWarning``) or
            ``"log"`` (``logging.warning``).
        hint: appended to the message (e.g. the flag that goes on anyway).

    Returns:
        The :class:`Diagnosis`.
    """
    if action not in ("raise", "warn", "log"):
        raise ValueError(f"Expected action 'raise', 'warn' or 'log'. Received: action={action!r}")
    if isinstance(x, tf.data.Dataset):
        x, labels = _unbatch(x)
    # model(x) rather than model.predict: predict would replace the History that fit returns
    predictions = np.concatenate([np.asarray(model(x[i:i + batch_size], training=False)) for i in range(0, len(x), batch_size)])
    diagnosis = diagnose(predictions, labels, num_classes)
    if diagnosis.collapsed:
        message = diagnosis.describe(stage) + hint
        if action == "raise":
            raise CollapseError(message)
        if action == "warn":
            warnings.warn(message, stacklevel=2)
        else:
            _log.warning(message)
    return diagnosis


def _unbatch(ds):
    xs, ys = [], []
    for batch in ds:
        x, y = (batch[0], batch[1] if len(batch) > 1 else None) if isinstance(batch, tuple) else (batch, None)
        if isinstance(x, dict):  # cached teacher outputs travel as {"x": ..., "teacher_outputs": ...}
            x = x["x"]
        xs.append(np.asarray(x))
        if y is not None:
            ys.append(np.asarray(y))
    return np.concatenate(xs), (np.concatenate(ys) if ys else None)


def probe_batches(data, batches=8):
    """Up to ``batches`` batches of ``data`` (a ``tf.data`` dataset, or ``(x, y)`` numpy
    arrays) as a small dataset for :class:`CollapseGuard`; ``None`` when ``data`` is
    neither (a generator, a ``keras.utils.Sequence``: nothing is read from it)."""
    if isinstance(data, tf.data.Dataset):
        return data.take(batches)
    if isinstance(data, tuple) and data and isinstance(data[0], np.ndarray):
        x, y = data[0], data[1] if len(data) > 1 else None
        n = min(len(x), 64 * batches)
        return tf.data.Dataset.from_tensor_slices((x[:n],) if y is None else (x[:n], np.asarray(y)[:n])).batch(64)
    if isinstance(data, np.ndarray):
        return tf.data.Dataset.from_tensor_slices(data[: 64 * batches]).batch(64)
    return None


class CollapseGuard(keras.callbacks.Callback):
    """At the end of ``fit``, checks that ``model`` did not collapse (see the module
    docstring) on ``data`` and warns, logs or raises :class:`CollapseError`.

    :meth:`kdtf.Distiller.fit` adds one (warning) on the validation data, else on a few
    training batches; pass ``collapse_guard=None`` to ``fit`` to turn it off, or
    ``"raise"`` to stop.

    Args:
        data: a small ``tf.data`` dataset of ``(x, y)`` (or ``x``) batches.
        model: the model to check (default: the one being trained).
        stage: named in the message.
        action: ``"warn"``, ``"raise"`` or ``"log"``.
    """

    def __init__(self, data, model=None, stage="training", action="warn"):
        super().__init__()
        if action not in ("raise", "warn", "log"):
            raise ValueError(f"Expected collapse_guard 'warn', 'raise', 'log' or None. Received: {action!r}")
        self.data, self.checked, self.stage, self.action = data, model, stage, action
        self.diagnosis = None

    def on_train_end(self, logs=None):
        model = self.checked or self.model
        self.diagnosis = check_collapse(model, self.data, stage=self.stage, action=self.action)


def with_guard(callbacks, data, stage, action="warn"):
    """``callbacks`` plus a :class:`CollapseGuard` on a few batches of ``data`` (unless one
    is there, ``action`` is ``None``, ``data`` has no labels or cannot be read twice)."""
    if not action or any(isinstance(c, CollapseGuard) for c in callbacks):
        return callbacks
    probe = probe_batches(data)
    labelled = probe is not None and isinstance(probe.element_spec, tuple) and len(probe.element_spec) > 1
    # Label-free training (an embedding student, BYOL) has no classes to collapse onto.
    return callbacks + [CollapseGuard(probe, stage=stage, action=action)] if labelled else callbacks
