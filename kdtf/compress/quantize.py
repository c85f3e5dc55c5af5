"""Quantization-aware training with TF-MOT: :func:`quantize` / :func:`is_quantized`.

``preserve="sparsity"`` uses TF-MOT's pruning-preserving scheme (PQAT) so that a pruned
model keeps its zeros through QAT; ``preserve="clusters"`` the cluster-preserving one
(CQAT). Layers the 8-bit registry cannot quantize are reported by name before TF-MOT
would fail deep inside.
"""

import copy
import re

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
    cluster_preserve_quantize_registry as _cpq,
)
from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve.default_8bit_cluster_preserve_quantize_scheme import (  # noqa: E501  (not in TF-MOT 0.8.1's public API)
    Default8BitClusterPreserveQuantizeScheme,
)
from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
    prune_preserve_quantize_registry as _ppq,
)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_registry,
)

from kdtf._keras import keras
from kdtf.compress.layers import require_graph_model
from kdtf.compress.prune import is_pruned
from kdtf.compress.transformer_qat import CUSTOM_OBJECTS as _TRANSFORMER_OBJECTS
from kdtf.compress.transformer_qat import IntegerInputsScheme, quantize_config

__all__ = ["quantize", "is_quantized", "quantize_scope", "unsupported_layers"]

_qk = tfmot.quantization.keras
# Layers that need no quantization config of their own: the input, and
# BatchNormalization, which TF-MOT's layout transforms fold into the Conv before it.
_PASSTHROUGH = (keras.layers.InputLayer,)
_TRANSFORMED = (keras.layers.BatchNormalization,)


class _StrictSupports:
    """TF-MOT 0.8.1's prune/cluster-preserving registries call every layer without
    trainable weights "supported" (Rescaling included), then fail in
    ``get_quantize_config`` on one that feeds a quantized layer. Support = what the
    default 8-bit registry supports."""

    _default = default_8bit_quantize_registry.Default8BitQuantizeRegistry()

    def supports(self, layer):
        return super().supports(layer) and self._default.supports(layer)


class _PrunePreserveRegistry(_StrictSupports, _ppq.Default8bitPrunePreserveQuantizeRegistry):
    pass


class _PrunePreserveScheme(_qk.default_8bit.Default8BitQuantizeScheme):
    def get_quantize_registry(self):
        return _PrunePreserveRegistry()


class _PerLayerClusterPreserveRegistry(_StrictSupports, _cpq.Default8bitClusterPreserveQuantizeRegistry):
    """TF-MOT 0.8.1 shares one weights quantizer between all layers, and its ``build``
    sets ``preserve_sparsity = False`` on meeting a layer without zeros, which switches
    sparsity preservation off for every layer built after it (PCQAT then loses the
    pruned zeros of all but the first layers). Each layer gets its own quantizer here."""

    def get_quantize_config(self, layer):
        config = super().get_quantize_config(layer)
        shared = getattr(config, "weight_quantizer", None)
        if any(shared is q for q in self._config_quantizer_map.values()):
            config.weight_quantizer = copy.copy(shared)  # before any build() mutates it
        return config


class _ClusterPreserveScheme(Default8BitClusterPreserveQuantizeScheme):
    def get_quantize_registry(self):
        return _PerLayerClusterPreserveRegistry(self.preserve_sparsity)


def _scheme(preserve):
    if preserve in (None, "none"):
        return _qk.default_8bit.Default8BitQuantizeScheme()
    if preserve == "sparsity":
        return _PrunePreserveScheme()
    if preserve == "clusters":
        return _ClusterPreserveScheme(preserve_sparsity=False)
    if preserve == "clusters+sparsity":
        return _ClusterPreserveScheme(preserve_sparsity=True)
    raise ValueError(
        "Unknown `preserve` value. Expected one of None, 'sparsity', 'clusters', "
        f"'clusters+sparsity'. Received: preserve={preserve!r}"
    )


def unsupported_layers(model, skip=()):
    """Names and types of layers that neither the default 8-bit registry nor
    :func:`kdtf.compress.transformer_qat.quantize_config` can quantize."""
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    return [
        (layer.name, type(layer).__name__)
        for layer in model.layers
        if layer.name not in skip
        and not isinstance(layer, _PASSTHROUGH + _TRANSFORMED)
        and not registry.supports(layer)
        and quantize_config(layer) is None
    ]


def quantize(model, *, preserve=None, skip=()):
    """Returns a quantization-aware copy of ``model`` to fine-tune (e.g. by a Distiller).

    Conv2D + BatchNormalization + ReLU sequences are folded by TF-MOT's 8-bit transforms;
    Transformer layers (LayerNormalization, attention, Embedding; see
    :mod:`kdtf.compress.transformer_qat`) get kdtf's QuantizeConfigs.

    Args:
        model: Sequential or Functional tf_keras model, pruning wrappers stripped.
        preserve: None, ``"sparsity"`` (PQAT), ``"clusters"`` (CQAT) or
            ``"clusters+sparsity"`` (PCQAT).
        skip: names of layers left in float.
    """
    model = require_graph_model(model)
    if is_pruned(model):
        raise ValueError(
            f"'{model.name}' still holds pruning wrappers: call "
            "kdtf.compress.strip_pruning(model) first, then quantize(..., preserve='sparsity')."
        )
    names = [layer.name for layer in model.layers]
    unknown = sorted(set(skip) - set(names))
    if unknown:
        raise ValueError(f"Unknown layer name(s) in `skip`: {unknown}. Layers of '{model.name}': {names}")
    bad = unsupported_layers(model, skip)
    if bad:
        listed = ", ".join(f"'{n}' ({t})" for n, t in bad)
        raise ValueError(
            f"TF-MOT cannot quantize layer(s) {listed} of '{model.name}'. Fix: leave them "
            f"in float with quantize(model, skip={[n for n, _ in bad]}), or annotate them "
            "with tfmot.quantization.keras.quantize_annotate_layer(layer, quantize_config=...)."
        )
    scheme = IntegerInputsScheme(_scheme(preserve))

    def annotate(layer):
        if layer.name in skip or isinstance(layer, _PASSTHROUGH):
            return layer
        return _qk.quantize_annotate_layer(layer, quantize_config=quantize_config(layer))

    # quantize_apply clones the annotated model with its weights, so the result never
    # shares layers with `model`.
    annotated = keras.models.clone_model(model, clone_function=annotate)
    # quantize_apply clones through serialization; the model is already in memory and
    # its Lambda layers are the caller's own code, so safe mode would only get in the way.
    from tf_keras.src.saving import serialization_lib

    try:
        with quantize_scope(), serialization_lib.SafeModeScope(False):
            return _qk.quantize_apply(annotated, scheme)
    except RuntimeError as error:
        match = re.search(r"Layer (\S+):(\S+) is not supported", str(error))
        if not match:
            raise
        raise ValueError(
            f"TF-MOT cannot quantize layer '{match.group(1)}' ({match.group(2).split('.')[-1]}) "
            f"of '{model.name}'. Fix: quantize(model, skip=['{match.group(1)}']) to leave it "
            "in float, or annotate it with a QuantizeConfig."
        ) from None


def is_quantized(model):
    """True when ``model`` holds TF-MOT quantization wrappers."""
    return any(isinstance(layer, _qk.QuantizeWrapper) for layer in model.layers)


def quantize_scope():
    """Context in which saved QAT models can be loaded (``keras.models.load_model``),
    Transformers from :mod:`kdtf.models.vit` included."""
    return _qk.quantize_scope(_TRANSFORMER_OBJECTS)
