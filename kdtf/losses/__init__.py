"""Distillation losses, by family, each next to the term that reads it.

A family module holds the math (a plain function per loss), its ``keras.losses.Loss``
class, and the :class:`kdtf.Term` subclass registered under the term's name
(``@register_term("kd")``). That decorator is the only registry: ``kdtf.losses.get``,
``kdtf.terms.names``, ``--distill`` and ``--help`` all read it. A new family module
dropped in this package is found by itself.
"""

from kdtf._keras import keras
from kdtf.losses.base import DistillationLoss
from kdtf.losses.feature import (
    AttentionTransferLoss,
    AttentionTransferTerm,
    HintLoss,
    HintTerm,
    attention_map,
    attention_transfer_loss,
    hint_loss,
)
from kdtf.losses.relation import (
    RKDAngleLoss,
    RKDAngleTerm,
    RKDDistanceLoss,
    RKDDistanceTerm,
    SimilarityPreservingLoss,
    SimilarityPreservingTerm,
    rkd_angle_loss,
    rkd_distance_loss,
    similarity_preserving_loss,
)
from kdtf.losses.representation import EmbeddingLoss, EmbeddingTerm, embedding_loss
from kdtf.losses.response import DKDLoss, DKDTerm, KDLoss, KDTerm, dkd_loss, kd_loss, mixed_kd_loss, softmax_kl
from kdtf.losses.transformer import (
    AttentionMatrixLoss,
    AttentionMatrixTerm,
    HiddenStateLoss,
    HiddenStateTerm,
    attention_matrix_loss,
    hidden_adapter,
    hidden_state_loss,
)
from kdtf.terms import TERMS

__all__ = [
    "DistillationLoss", "KDLoss", "kd_loss", "mixed_kd_loss", "softmax_kl", "DKDLoss", "dkd_loss",
    "HintLoss", "hint_loss", "AttentionTransferLoss", "attention_transfer_loss", "attention_map",
    "RKDDistanceLoss", "rkd_distance_loss", "RKDAngleLoss", "rkd_angle_loss",
    "SimilarityPreservingLoss", "similarity_preserving_loss",
    "EmbeddingLoss", "embedding_loss",
    "AttentionMatrixLoss", "attention_matrix_loss", "HiddenStateLoss", "hidden_state_loss", "hidden_adapter",
    "KDTerm", "DKDTerm", "HintTerm", "AttentionTransferTerm", "RKDDistanceTerm", "RKDAngleTerm",
    "SimilarityPreservingTerm", "EmbeddingTerm", "AttentionMatrixTerm", "HiddenStateTerm",
    "get", "names",
]


def names():
    """The names of the registered terms that compute a Keras loss."""
    return [name for name in TERMS.names() if TERMS.get(name).loss_class is not None]


def get(identifier, **kwargs):
    """Returns a distillation loss from a term name, a config dict or a loss object.

    Args:
        identifier: a registered term name (``"kd"``: its ``loss_class``), a dict
            ``{"class_name", "config"}`` as produced by ``keras.losses.serialize``, or a
            loss instance (returned as is).
        **kwargs: constructor arguments when ``identifier`` is a name.
    """
    if isinstance(identifier, str):
        if identifier not in names():
            raise ValueError(f"Unknown distillation loss {identifier!r}. Known: {', '.join(names())}")
        return TERMS.get(identifier).loss_class(**kwargs)
    if isinstance(identifier, dict):
        return keras.losses.deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(
        f"Expected a loss name, config dict or loss object. Received: {identifier!r}"
    )
