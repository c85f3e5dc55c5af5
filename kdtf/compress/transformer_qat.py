"""Quantization-aware training of Transformers under TF-MOT: configs for the layers its
8-bit registry does not know.

TF-MOT 0.8.1 quantizes Dense, Add, GELU ``Activation`` layers and reshapes, but not
LayerNormalization (tensorflow/model-optimization #942), MultiHeadAttention (#718, #661)
or Embedding, and it leaves the Softmax output in float. :mod:`kdtf.models.vit` writes
attention from primitive layers, and this module gives each of the remaining layers a
``QuantizeConfig``:

=========================================  ============================================
layer                                      fake-quantized in training
=========================================  ============================================
LayerNormalization                         its output (8-bit, moving-average range)
Softmax (the attention weights)            its output on the fixed range [0, 255/256]:
                                           LiteRT's int8 softmax scale 1/256
AttentionLogits, AttentionContext,         their output (8-bit, moving-average range)
PositionEmbedding, ClassToken
SplitHeads, MergeHeads                     nothing (reshape + transpose keep the scale)
Embedding                                  its table (8-bit symmetric, per tensor)
=========================================  ============================================

The q/k/v/output projections and the MLP are Dense layers (kernel and output quantized
by TF-MOT's own config); GELU is an ``Activation("gelu")`` (output quantized by TF-MOT).
Every config is registered with Keras, so a QAT model saved as ``.h5`` reloads inside
``kdtf.compress.quantize_scope()``.

:func:`quantize_config` is the hook used by :func:`kdtf.compress.quantize`, so
``kdtf.compress.quantize(vit)`` (and the recipe's QAT step) handles these models.
"""

import tensorflow_model_optimization as tfmot

from kdtf._keras import keras
from kdtf.export.tflite import needs_calibration  # noqa: F401  (re-exported: what an int8 export of these models needs)
from kdtf.models import vit

__all__ = [
    "quantize_config",
    "LayerNormQuantizeConfig",
    "SoftmaxQuantizeConfig",
    "OutputQuantizeConfig",
    "PassThroughQuantizeConfig",
    "EmbeddingQuantizeConfig",
    "IntegerInputsScheme",
    "needs_calibration",
    "CUSTOM_OBJECTS",
]

_qk = tfmot.quantization.keras
_quantizers = _qk.quantizers
# LiteRT's int8 softmax writes scale 1/256, zero point -128: the range [0, 255/256].
SOFTMAX_RANGE = (0.0, 255.0 / 256.0)


def _activation_quantizer():
    return _quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)


class _NoWeightsConfig(_qk.QuantizeConfig):
    """Quantizes no weight and no inner activation; subclasses choose the output quantizers."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="kdtf")
class OutputQuantizeConfig(_NoWeightsConfig):
    """Fake-quantizes a layer's output to 8 bits (asymmetric, moving-average range)."""

    def get_output_quantizers(self, layer):
        return [_activation_quantizer()]


@keras.saving.register_keras_serializable(package="kdtf")
class LayerNormQuantizeConfig(OutputQuantizeConfig):
    """LayerNormalization: output fake-quantized; gamma and beta stay float in training
    (the converter quantizes them as the constant operands of LiteRT's MUL and ADD, as
    it does for a folded BatchNormalization)."""


@keras.saving.register_keras_serializable(package="kdtf")
class SoftmaxQuantizeConfig(_NoWeightsConfig):
    """Softmax (attention weights): output fake-quantized on the fixed range
    ``[0, 255/256]``, LiteRT's int8 softmax output grid, so training sees the weights
    the int8 model will use (small probabilities round to 0)."""

    def get_output_quantizers(self, layer):
        return [_quantizers.FixedQuantizer(num_bits=8, init_min=SOFTMAX_RANGE[0], init_max=SOFTMAX_RANGE[1], narrow_range=False)]


@keras.saving.register_keras_serializable(package="kdtf")
class PassThroughQuantizeConfig(_NoWeightsConfig):
    """Nothing quantized: layers that only move values (reshape, transpose)."""


@keras.saving.register_keras_serializable(package="kdtf")
class EmbeddingQuantizeConfig(_NoWeightsConfig):
    """Embedding: the table fake-quantized to 8 bits (symmetric, per tensor); a lookup
    of quantized values needs no output quantizer."""

    def get_weights_and_quantizers(self, layer):
        return [(layer.embeddings, _quantizers.LastValueQuantizer(num_bits=8, per_axis=False, symmetric=True, narrow_range=True))]

    def set_quantize_weights(self, layer, quantize_weights):
        (layer.embeddings,) = quantize_weights


_OUTPUT_LAYERS = (vit.AttentionLogits, vit.AttentionContext, vit.PositionEmbedding, vit.ClassToken)
_MOVE_LAYERS = (vit.SplitHeads, vit.MergeHeads)


def quantize_config(layer):
    """The QuantizeConfig this module gives ``layer``, or ``None`` (TF-MOT's registry
    decides). Softmax gets one too: TF-MOT's default leaves its output in float."""
    if isinstance(layer, keras.layers.LayerNormalization):
        return LayerNormQuantizeConfig()
    if isinstance(layer, keras.layers.Softmax):
        return SoftmaxQuantizeConfig()
    if isinstance(layer, keras.layers.Embedding):
        return EmbeddingQuantizeConfig()
    if isinstance(layer, _OUTPUT_LAYERS):
        return OutputQuantizeConfig()
    if isinstance(layer, _MOVE_LAYERS):
        return PassThroughQuantizeConfig()
    return None



# Layers and configs by bare class name, for kdtf.compress.quantize_scope().
CUSTOM_OBJECTS = dict(
    vit.CUSTOM_OBJECTS,
    **{cls.__name__: cls for cls in (OutputQuantizeConfig, LayerNormQuantizeConfig, SoftmaxQuantizeConfig, PassThroughQuantizeConfig, EmbeddingQuantizeConfig)},
)


class _IntegerInputsLayout(_qk.QuantizeLayoutTransform):
    """TF-MOT's layout transform, minus the input quantizer after integer inputs (token
    ids): TF-MOT adds a float fake-quant after every input layer whose consumer is
    annotated, which fails on int32. Only inputs in the map are candidates, so integer
    inputs are left out of it."""

    def __init__(self, inner):
        self.inner = inner

    def apply(self, model, layer_quantize_map):
        integer = {layer.name for layer in model.layers if isinstance(layer, keras.layers.InputLayer) and not layer.dtype.startswith("float")}
        return self.inner.apply(model, {k: v for k, v in layer_quantize_map.items() if k not in integer})


class IntegerInputsScheme(_qk.QuantizeScheme):
    """Wraps a TF-MOT quantize scheme so that models with integer inputs (token ids
    feeding an Embedding) can be quantized; float inputs are quantized as before."""

    def __init__(self, scheme):
        self.scheme = scheme

    def get_layout_transformer(self):
        return _IntegerInputsLayout(self.scheme.get_layout_transformer())

    def get_quantize_registry(self):
        return self.scheme.get_quantize_registry()
