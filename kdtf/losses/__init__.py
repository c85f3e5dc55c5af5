"""Distillation losses, by family, and a registry: ``kdtf.losses.get("kd")``."""

from kdtf.losses.response import DKDLoss, KDLoss, dkd_loss, kd_loss, softmax_kl

_REGISTRY = {"kd": KDLoss, "dkd": DKDLoss}

__all__ = ["KDLoss", "kd_loss", "softmax_kl", "DKDLoss", "dkd_loss", "get", "names"]


def names():
    """Returns the registered loss names."""
    return sorted(_REGISTRY)


def get(identifier, **kwargs):
    """Returns a distillation loss from a name, a config dict or a loss object.

    Args:
        identifier: a registered name (``"kd"``), a dict ``{"class_name", "config"}``
            as produced by ``keras.losses.serialize``, or a loss instance (returned as is).
        **kwargs: constructor arguments when ``identifier`` is a name.
    """
    if isinstance(identifier, str):
        if identifier not in _REGISTRY:
            raise ValueError(
                f"Unknown distillation loss {identifier!r}. Known: {', '.join(names())}"
            )
        return _REGISTRY[identifier](**kwargs)
    if isinstance(identifier, dict):
        from kdtf._keras import keras

        return keras.losses.deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(
        f"Expected a loss name, config dict or loss object. Received: {identifier!r}"
    )
