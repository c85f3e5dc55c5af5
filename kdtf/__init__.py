"""kdtf: knowledge distillation, compression and verified TFLite export for tf_keras.

Public API, by task:

* distill: :class:`Distiller`, :mod:`kdtf.losses`
* compress: :mod:`kdtf.compress` (prune / strip_pruning, quantize)
* export and verify: :mod:`kdtf.export` (to_tflite, evaluate, latency, op check)
* data and models: :mod:`kdtf.data` (specs streamed through tf.data, image cache,
  teacher-output cache, augmentation), :mod:`kdtf.models` (zoo,
  application backbones), :mod:`kdtf.finetune` (two-phase, teacher-assisted)
* self-supervised teachers: :mod:`kdtf.ssl` (BYOL, linear probe, k-NN)
* scale: :mod:`kdtf.distribute` (strategies by name)
* the end-to-end recipes: :mod:`kdtf.pipeline`, :mod:`kdtf.ssl.pipeline`, :mod:`kdtf.report`,
  :mod:`kdtf.runstate` (resume)

kdtf builds models with tf_keras (Keras 2), which TF-MOT requires; ``keras`` below is
that module. ``TF_USE_LEGACY_KERAS=1`` is set here, before TensorFlow is imported.
"""

import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kdtf._keras import keras  # noqa: E402
from kdtf.callbacks import NonFiniteLossError, StopOnNonFiniteLoss  # noqa: E402
from kdtf.distiller import Distiller, logits_view  # noqa: E402
from kdtf import compress, data, export, losses, models  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "keras",
    "Distiller",
    "logits_view",
    "NonFiniteLossError",
    "StopOnNonFiniteLoss",
    "losses",
    "compress",
    "export",
    "data",
    "models",
]
