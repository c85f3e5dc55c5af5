"""Saving run outputs atomically and loading user-supplied ``.keras`` files with clear errors.

Above :mod:`kdtf.compress` (a QAT model saves as ``.h5`` and reloads in TF-MOT's scope)
and :mod:`kdtf.keras3` (a Keras 3 file is converted where it enters).
"""

import contextlib
import logging
import os
import warnings
import zipfile

import h5py
from tf_keras.src.saving import serialization_lib

from kdtf import compress
from kdtf._keras import keras
from kdtf.io import atomic_path
from kdtf.keras3 import is_keras3_file, load_keras3_file

__all__ = ["load_model", "save_model"]

_UNBUILT_METRICS = "Compiled the loaded model, but the compiled metrics have yet to be built"


@contextlib.contextmanager
def _without_unbuilt_metrics_warning():
    """tf_keras's .h5 save tries to build the compiled metrics of every model and, for a
    model never compiled itself (a student the Distiller trained), warns that they
    "have yet to be built": there is nothing compiled to lose, so the line is noise."""
    tf_logger = logging.getLogger("tensorflow")
    drop = lambda record: not record.getMessage().startswith(_UNBUILT_METRICS)
    tf_logger.addFilter(drop)
    try:
        yield
    finally:
        tf_logger.removeFilter(drop)


def save_model(model, path):
    """Saves ``model`` to ``path`` atomically, without optimizer state; returns the path
    written. QAT models go to ``.h5`` instead: TF-MOT 0.8.1's quantize layer does not
    reload from the ``.keras`` format ("expected 5 variables, but received 3")."""
    if compress.is_quantized(model):
        path = os.path.splitext(path)[0] + ".h5"
        with atomic_path(path) as tmp:
            with warnings.catch_warnings(), _without_unbuilt_metrics_warning():
                warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy"
                model.save(tmp, include_optimizer=False)
        return path
    # The .keras format always stores a compiled model's optimizer; ship weights only.
    if getattr(model, "optimizer", None) is not None:
        model = compress.clone_with_weights(model)
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


def load_model(path, *, safe_mode=True, compile=False):
    """Loads a ``.keras`` (or, for QAT models, ``.h5``) model; a missing or corrupt file
    gives one clear ValueError. A ``.keras`` file saved by Keras 3 is loaded with Keras 3
    and rebuilt as tf_keras (:func:`kdtf.keras3.load_keras3_file`, uncompiled).

    Safe mode stays on by default: a Lambda layer holding Python code is refused unless
    ``safe_mode=False`` (only for files you trust: it runs code from the file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"Model file not found: {path!r}")
    if path.endswith((".h5", ".hdf5")):
        if not h5py.is_hdf5(path):
            raise ValueError(f"{path!r} is not an HDF5 file (corrupt or truncated?). Re-save it with model.save(...).")
        kwargs = {}
    elif not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not a .keras archive (corrupt or truncated?). Re-save it with model.save(...).")
    elif is_keras3_file(path):
        return load_keras3_file(path, safe_mode=safe_mode)
    else:
        kwargs = {"safe_mode": safe_mode}
    try:
        # the scope also covers .h5 files, whose Lambda layers hold marshalled code
        with compress.quantize_scope(), serialization_lib.SafeModeScope(safe_mode):  # QAT .h5 need TF-MOT's classes
            return keras.models.load_model(path, compile=compile, **kwargs)
    except ValueError as error:
        message = str(error).strip().splitlines()[0]
        if "safe_mode" in str(error) or "Lambda" in str(error):
            message = (
                "it holds a Lambda layer with Python code, which safe mode refuses to run. "
                "Load it only if you trust the file: pass --unsafe-load (kdtf.saving.load_model(..., safe_mode=False))"
            )
        raise ValueError(f"Cannot load {path!r}: {message}") from None
    except (OSError, KeyError, TypeError) as error:
        raise ValueError(f"Cannot load {path!r}: {error}") from None
