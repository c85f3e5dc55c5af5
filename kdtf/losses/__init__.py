"""Distillation losses, by family, and a registry: ``kdtf.losses.get("kd")``."""

from kdtf._keras import keras
from kdtf.losses.base import DistillationLoss
from kdtf.losses.feature import AttentionTransferLoss, HintLoss, attention_map, attention_transfer_loss, hint_loss
from kdtf.losses.relation import (
    RKDAngleLoss,
    RKDDistanceLoss,
    SimilarityPreservingLoss,
    rkd_angle_loss,
    rkd_distance_loss,
    similarity_preserving_loss,
)
from kdtf.losses.representation import EmbeddingLoss, embedding_loss
from kdtf.losses.response import (
    DISTLoss,
    DKDLoss,
    KDLoss,
    dist_loss,
    dkd_loss,
    kd_loss,
    mixed_kd_loss,
    softmax_kl,
    standardize_logits,
)
from kdtf.losses.transformer import (
    AttentionMatrixLoss,
    HiddenStateLoss,
    attention_matrix_loss,
    hidden_adapter,
    hidden_state_loss,
)

# name -> class; each family's module holds the math, this dict is the only registry.
_REGISTRY = {
    "kd": KDLoss,
    "dkd": DKDLoss,
    "dist": DISTLoss,
    "fitnets": HintLoss,
    "at": AttentionTransferLoss,
    "rkd_distance": RKDDistanceLoss,
    "rkd_angle": RKDAngleLoss,
    "sp": SimilarityPreservingLoss,
    "embedding": EmbeddingLoss,
    "attention": AttentionMatrixLoss,
    "hidden": HiddenStateLoss,
}

__all__ = [
    "DistillationLoss", "KDLoss", "kd_loss", "mixed_kd_loss", "softmax_kl", "DKDLoss", "dkd_loss",
    "DISTLoss", "dist_loss", "standardize_logits",
    "HintLoss", "hint_loss", "AttentionTransferLoss", "attention_transfer_loss", "attention_map",
    "RKDDistanceLoss", "rkd_distance_loss", "RKDAngleLoss", "rkd_angle_loss",
    "SimilarityPreservingLoss", "similarity_preserving_loss",
    "EmbeddingLoss", "embedding_loss",
    "AttentionMatrixLoss", "attention_matrix_loss", "HiddenStateLoss", "hidden_state_loss", "hidden_adapter",
    "get", "names",
]


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
        return keras.losses.deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(
        f"Expected a loss name, config dict or loss object. Received: {identifier!r}"
    )
