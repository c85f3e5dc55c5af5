"""Keras 3 optimizers, metrics, losses and callbacks, at the edge: converted or refused.

kdtf trains tf_keras models; a Keras 3 object (from ``import keras``) handed to
``Distiller.compile``/``fit`` or :mod:`kdtf.training` would fail deep inside tf_keras
("Could not interpret optimizer identifier", "'Variable' object has no attribute
'_distribute_strategy'"). Here each is rebuilt as the tf_keras object of the same class
from its configuration when that is exact (every setting has the same meaning in
tf_keras, Keras-3-only settings are at their default), else refused in one line naming
the tf_keras replacement. Models are converted by :mod:`kdtf.keras3`.

Nothing here imports Keras 3: an object is recognised by the module its class comes
from (``keras.src...``; tf_keras's own live in ``tf_keras...``).
"""

import inspect
import logging

from kdtf._keras import keras

__all__ = ["is_keras3_object", "optimizer", "metric", "metrics", "loss", "callbacks", "refuse_loss_keywords"]

logger = logging.getLogger(__name__)

# Keras-3-only constructor arguments, dropped when left at these defaults.
_KERAS3_ONLY = {"loss_scale_factor": None, "gradient_accumulation_steps": None, "raise_error": False}
# Callbacks whose Keras 3 attributes hold their constructor arguments (attribute names that differ).
_CALLBACKS = {"EarlyStopping": {}, "ReduceLROnPlateau": {}, "TerminateOnNaN": {}, "LearningRateScheduler": {},
              "CSVLogger": {"separator": "sep"}}
_KERAS_IO = ("student_loss_fn", "distillation_loss_fn", "alpha", "temperature")


def is_keras3_object(obj):
    """True for an object of a standalone Keras 3 class (``keras.src...``)."""
    return type(obj).__module__.split(".")[0] == "keras"


def _refuse(kind, obj, why, replacement):
    raise ValueError(
        f"Expected a tf_keras {kind} (kdtf trains tf_keras models). Received: the Keras 3 "
        f"{kind} {type(obj).__name__} ({why}). Use {replacement} instead (`from kdtf import keras`)."
    )


def _target(kind, obj, module):
    name = type(obj).__name__
    target = getattr(module, name, None)
    if not inspect.isclass(target):
        _refuse(kind, obj, "tf_keras has no class of that name", f"a tf_keras {kind} from keras.{module.__name__.split('.')[-1]}")
    return target


def _rebuild(kind, obj, module, config):
    """The tf_keras class of ``obj``'s name, built from ``config`` when every argument
    it sets exists there (Keras-3-only ones must be at their default)."""
    target = _target(kind, obj, module)
    replacement = f"keras.{module.__name__.split('.')[-1]}.{target.__name__}"
    parameters = inspect.signature(target.__init__).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    kept = {}
    for key, value in config.items():
        if key in _KERAS3_ONLY and value == _KERAS3_ONLY[key]:
            continue
        if key not in parameters and not (takes_any and key in ("name", "dtype")):
            _refuse(kind, obj, f"its setting {key}={value!r} has no tf_keras equivalent", replacement)
        if isinstance(value, dict):
            _refuse(kind, obj, f"its {key} is an object ({value.get('class_name', 'config')})", replacement)
        kept[key] = value
    built = target(**kept)
    logger.info("converted the Keras 3 %s %s to tf_keras", kind, type(obj).__name__)
    return built


def optimizer(obj):
    """A tf_keras optimizer for ``obj``: strings and tf_keras optimizers as they are, a
    Keras 3 optimizer rebuilt from its config (a learning-rate schedule is refused)."""
    if not is_keras3_object(obj):
        return obj
    return _rebuild("optimizer", obj, keras.optimizers, obj.get_config())


def metric(obj):
    """A tf_keras metric for one Keras 3 metric object or function (by name)."""
    if not is_keras3_object(obj) and not _is_keras3_function(obj):
        return obj
    if _is_keras3_function(obj):
        return _function("metric", obj, keras.metrics)
    config = dict(obj.get_config())
    if not isinstance(config.get("dtype"), (str, type(None))):
        _refuse("metric", obj, "its dtype is a policy", f"keras.metrics.{type(obj).__name__}")
    return _rebuild("metric", obj, keras.metrics, config)


def metrics(values):
    """:func:`metric` over a list (or dict of lists, as ``compile`` takes)."""
    if values is None or isinstance(values, str):
        return values
    if isinstance(values, dict):
        return {key: metrics(value) for key, value in values.items()}
    if isinstance(values, (list, tuple)):
        return [metrics(v) if isinstance(v, (list, tuple)) else metric(v) for v in values]
    return metric(values)


def loss(obj):
    """A tf_keras loss for a Keras 3 loss object or function (by name)."""
    if _is_keras3_function(obj):
        return _function("loss", obj, keras.losses)
    if not is_keras3_object(obj):
        return obj
    return _rebuild("loss", obj, keras.losses, obj.get_config())


def callbacks(values):
    """The callbacks with each Keras 3 callback rebuilt as tf_keras (those whose
    settings are their attributes: :data:`_CALLBACKS`), or refused naming the
    replacement."""
    return [_callback(c) if is_keras3_object(c) else c for c in (values or [])]


def _callback(obj):
    name = type(obj).__name__
    if name not in _CALLBACKS:
        _target("callback", obj, keras.callbacks)
        _refuse("callback", obj, "its settings cannot be read back exactly", f"keras.callbacks.{name}")
    renamed = _CALLBACKS[name]
    parameters = [p for p in inspect.signature(type(obj).__init__).parameters if p not in ("self", "kwargs")]
    config = {p: getattr(obj, renamed.get(p, p)) for p in parameters}
    return _rebuild("callback", obj, keras.callbacks, config)


def _is_keras3_function(obj):
    return inspect.isfunction(obj) and (obj.__module__ or "").split(".")[0] == "keras"


def _function(kind, fn, module):
    target = getattr(module, fn.__name__, None)
    if target is None or not callable(target):
        raise ValueError(
            f"Expected a tf_keras {kind}. Received: the Keras 3 function {fn.__name__}, which tf_keras "
            f"lacks. Pass a tf_keras {kind} (`from kdtf import keras`)."
        )
    logger.info("converted the Keras 3 %s function %s to tf_keras", kind, fn.__name__)
    return target


def refuse_loss_keywords(kwargs):
    """Raises ValueError for a loss given to ``Distiller.compile``: ``loss=``, or keras-io's
    Distiller keywords (``student_loss_fn``, ``distillation_loss_fn``, ``alpha``,
    ``temperature``); kdtf sets the loss when the Distiller is built."""
    given = [k for k in _KERAS_IO if k in kwargs] + (["loss"] if kwargs.get("loss") is not None else [])
    if given:
        raise ValueError(
            f"Distiller.compile() takes no {', '.join(given)}: the loss is alpha * cross-entropy + (1 - alpha) * "
            "the distillation terms, set when the Distiller is built: kdtf.Distiller(student, teacher, "
            "temperature=..., alpha=..., distill='kd'), then compile(optimizer=..., metrics=[...])."
        )
