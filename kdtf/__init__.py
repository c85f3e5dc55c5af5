"""kdtf: knowledge distillation, compression and verified TFLite export for tf_keras.

Public API, by task:

* distill: :class:`Distiller`, :class:`DistillSpec`, :mod:`kdtf.losses` (incl. attention
  matrices and hidden states of Transformers), :class:`Term` and :func:`register_term`
  (:mod:`kdtf.terms`; a new term: docs/extending.md), :class:`TeacherOutputs`;
  :class:`MutualDistiller` (peers teach each other), :class:`AdversarialDistiller` (a
  discriminator on the outputs)
* train: :mod:`kdtf.optim` (SGD/Adam/AdamW, learning-rate schedules, weight decay, L1)
* compress: :mod:`kdtf.compress` (prune / strip_pruning, cluster, quantize, factorize,
  ``Recipe``; :mod:`kdtf.compress.transformer_qat` for LayerNorm, attention and
  Embedding), fine-tuned by :class:`FineTuner` (:mod:`kdtf.training`)
* export and verify: :mod:`kdtf.export` (to_tflite, evaluate, latency, op check;
  litert-quantizer post-training quantization, per-op error, mixed precision)
* data and models: :mod:`kdtf.data` (specs streamed through tf.data, image cache,
  teacher-output cache, augmentation), :mod:`kdtf.models` (zoo,
  application backbones, :mod:`kdtf.models.vit` Transformers), :mod:`kdtf.finetune`
  (two-phase, teacher-assisted)
* Keras 3 in and out: :func:`from_keras3`, :func:`to_keras3` (:mod:`kdtf.keras3`); Keras 3
  optimizers, metrics, losses and callbacks are converted or refused (:mod:`kdtf.keras3_objects`)
* self-supervised teachers: :mod:`kdtf.ssl` (BYOL, linear probe, k-NN)
* scale: :mod:`kdtf.distribute` (strategies by name)
* the end-to-end recipes: :mod:`kdtf.pipeline`, :mod:`kdtf.ssl.pipeline` (stages run by
  :mod:`kdtf.stages`), :mod:`kdtf.config`, :mod:`kdtf.report`, :mod:`kdtf.runstate`

kdtf builds models with tf_keras (Keras 2), which TF-MOT requires; ``keras`` below is
that module. ``TF_USE_LEGACY_KERAS=1`` is set here, before TensorFlow is imported.
Names are loaded on first use, so ``import kdtf.config`` (what the command line needs
to check its flags) does not load TensorFlow.
"""

import importlib as _importlib
import os as _os
from importlib.util import find_spec as _find_spec

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_importlib.import_module("kdtf.keras3_guard").install()  # Keras 3's load_model of a Distiller: one line
__version__ = "0.1.0"

_EXPORTS = {
    "keras": "kdtf._keras",
    "Distiller": "kdtf.distiller",
    "logits_view": "kdtf.taps",
    "Term": "kdtf.terms",
    "register_term": "kdtf.terms",
    "TeacherOutputs": "kdtf.data.teacher_outputs",
    "NonFiniteLossError": "kdtf.callbacks",
    "StopOnNonFiniteLoss": "kdtf.callbacks",
    "CollapseError": "kdtf.collapse",
    "CollapseGuard": "kdtf.collapse",
    "DistillSpec": "kdtf.spec",
    "TermSpec": "kdtf.spec",
    "FineTuner": "kdtf.training",
    "MutualDistiller": "kdtf.mutual",
    "AdversarialDistiller": "kdtf.adversarial",
    "from_keras3": "kdtf.keras3",
    "to_keras3": "kdtf.keras3",
}
_SUBMODULES = ("compress", "data", "export", "losses", "models", "terms", "training", "finetune", "ssl", "distribute", "keras3", "keras3_objects", "optim")

__all__ = sorted(_EXPORTS) + list(_SUBMODULES)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES or (not name.startswith("_") and _find_spec(f"kdtf.{name}") is not None):
        value = _importlib.import_module(f"kdtf.{name}")  # every public submodule, e.g. kdtf.saving
    else:
        raise AttributeError(f"module 'kdtf' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
