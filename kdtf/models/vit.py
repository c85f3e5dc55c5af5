"""Vision Transformers and a token-id Transformer classifier, built from primitive layers.

Every block is pre-norm (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021;
Xiong et al. 2020)::

    x = x + Dense_o(heads(softmax(q k^T / sqrt(d_h)) v)),  q, k, v = Dense_{q,k,v}(LN(x))
    x = x + Dense_2(GELU(Dense_1(LN(x))))

Attention is written with Dense projections, ``SplitHeads`` / ``MergeHeads`` (reshape +
transpose), ``AttentionLogits`` (batched ``q k^T / sqrt(d_h)``), a ``Softmax`` layer and
``AttentionContext`` (batched ``A v``) instead of ``keras.layers.MultiHeadAttention``:

* TF-MOT cannot quantize or prune inside MultiHeadAttention (tensorflow/model-optimization
  #718, #661); here every projection is a Dense that TF-MOT prunes and quantizes, and the
  softmax output is its own layer that a QuantizeConfig can fake-quantize
  (:mod:`kdtf.compress.transformer_qat`).
* the attention weights ``(batch, heads, queries, keys)`` are an ordinary layer output,
  named ``block{i}_attention_scores``; the hidden state after block ``i`` is
  ``block{i}_output`` (``(batch, tokens, dim)``), so ``kdtf.taps.tap(model, [name])`` reads
  either. :func:`block_layer_names` lists them in block order.
* each piece converts to one TFLite builtin (FULLY_CONNECTED, RESHAPE, TRANSPOSE,
  BATCH_MATMUL, SOFTMAX, GELU, MEAN/…), so the float and int8 exports need no Flex op.

Patches: a ``Conv2D(dim, patch, strides=patch)`` embeds non-overlapping patches. A side
that ``patch`` does not divide is zero-padded to the next multiple (``ZeroPadding2D``,
split evenly, the odd pixel at the end), so any image size works. The presets keep a
fixed 7x7 token grid: ``patch = ceil(side / 7)`` per axis and the image zero-padded to
``7 * patch`` (patch 4 at 28x28; 5 at 32x32, padded to 35; 6 at a side of 36, padded to
42; 32 at 224x224), so cost and attention-map shapes do not grow with ``--image-size``
and the teacher's and student's maps match token for token.
"""

import math
import re

from kdtf._keras import keras, tf
from kdtf.taps import WRAPPER_PREFIXES

__all__ = [
    "vit_classifier",
    "text_classifier",
    "vit_teacher",
    "vit_student",
    "PRESETS",
    "block_layer_names",
    "uniform_block_mapping",
    "block_pairs",
    "preset_patch_size",
    "CUSTOM_OBJECTS",
]

PRESET_GRID = 7  # tokens per side for the presets
# LayerNormalization epsilon: tf_keras's default 1e-3, not ViT's 1e-6. Near-constant
# tokens (blank MNIST patches) have a tiny variance; with 1e-6 their normalisation
# amplifies int8 rounding ~50x, and LiteRT's int8 outputs drift from the QAT model's
# (top-1 agreement 0.918 vs 0.964 with 1e-3, same float accuracy; vit_student, 3 epochs
# + 1 QAT epoch on mnist5k, seed 1; one run on a shared machine).
LN_EPSILON = 1e-3


@keras.saving.register_keras_serializable(package="kdtf")
class SplitHeads(keras.layers.Layer):
    """``(batch, tokens, heads * d_h)`` -> ``(batch, heads, tokens, d_h)``."""

    def __init__(self, heads, **kwargs):
        super().__init__(**kwargs)
        self.heads = int(heads)

    def call(self, x):
        d_h = x.shape[-1] // self.heads
        x = tf.reshape(x, [-1, x.shape[1], self.heads, d_h])
        return tf.transpose(x, [0, 2, 1, 3])

    def get_config(self):
        return dict(super().get_config(), heads=self.heads)


@keras.saving.register_keras_serializable(package="kdtf")
class MergeHeads(keras.layers.Layer):
    """``(batch, heads, tokens, d_h)`` -> ``(batch, tokens, heads * d_h)``."""

    def call(self, x):
        x = tf.transpose(x, [0, 2, 1, 3])
        return tf.reshape(x, [-1, x.shape[1], x.shape[2] * x.shape[3]])


@keras.saving.register_keras_serializable(package="kdtf")
class AttentionLogits(keras.layers.Layer):
    """``[q, k]`` (each ``(batch, heads, tokens, d_h)``) -> ``q k^T / sqrt(d_h)``,
    ``(batch, heads, queries, keys)``. The scale multiplies ``q`` (a constant MUL that
    the TFLite converter folds into the matmul's input scale)."""

    def call(self, inputs):
        q, k = inputs
        return tf.matmul(q * (1.0 / math.sqrt(q.shape[-1])), k, transpose_b=True)


@keras.saving.register_keras_serializable(package="kdtf")
class AttentionContext(keras.layers.Layer):
    """``[weights, v]`` -> ``weights @ v``: ``(batch, heads, queries, d_h)``."""

    def call(self, inputs):
        weights, v = inputs
        return tf.matmul(weights, v)


@keras.saving.register_keras_serializable(package="kdtf")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned ``(tokens, dim)`` table to ``(batch, tokens, dim)`` inputs."""

    def build(self, input_shape):
        self.embedding = self.add_weight(
            name="embedding", shape=(1, input_shape[1], input_shape[2]),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        super().build(input_shape)

    def call(self, x):
        return x + self.embedding


@keras.saving.register_keras_serializable(package="kdtf")
class ClassToken(keras.layers.Layer):
    """Prepends a learned ``[class]`` token: ``(batch, n, dim)`` -> ``(batch, n + 1, dim)``."""

    def build(self, input_shape):
        self.token = self.add_weight(name="token", shape=(1, 1, input_shape[2]), initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        token = tf.tile(self.token, [tf.shape(x)[0], 1, 1])
        return tf.concat([token, x], axis=1)


# By bare class name: TF-MOT's wrappers serialize the layer they wrap without the
# "kdtf>" registration prefix, so loading a QAT .h5 needs these in scope.
CUSTOM_OBJECTS = {
    cls.__name__: cls for cls in (SplitHeads, MergeHeads, AttentionLogits, AttentionContext, PositionEmbedding, ClassToken)
}


def _check_positive(**values):
    for argument, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Expected `{argument}` to be an integer >= 1. Received: {argument}={value!r}")


def encoder_block(x, index, *, heads, mlp_dim):
    """One pre-norm encoder block on ``(batch, tokens, dim)``; layers ``block{index}_*``."""
    layers = keras.layers
    dim, p = x.shape[-1], f"block{index}_"
    h = layers.LayerNormalization(epsilon=LN_EPSILON, name=p + "norm1")(x)
    q, k, v = (SplitHeads(heads, name=p + n + "_heads")(layers.Dense(dim, name=p + n)(h)) for n in ("query", "key", "value"))
    logits = AttentionLogits(name=p + "attention_logits")([q, k])
    scores = layers.Softmax(axis=-1, name=p + "attention_scores")(logits)
    context = MergeHeads(name=p + "merge_heads")(AttentionContext(name=p + "attention_context")([scores, v]))
    x = layers.Add(name=p + "attention_residual")([x, layers.Dense(dim, name=p + "attention_output")(context)])
    h = layers.LayerNormalization(epsilon=LN_EPSILON, name=p + "norm2")(x)
    h = layers.Activation("gelu", name=p + "mlp_gelu")(layers.Dense(mlp_dim, name=p + "mlp_dense1")(h))
    return layers.Add(name=p + "output")([x, layers.Dense(dim, name=p + "mlp_dense2")(h)])


def _encoder_head(tokens, inputs, num_classes, depth, heads, mlp_dim, pooling, name):
    """Class token / positions, ``depth`` blocks, final LayerNorm, pooling, logits."""
    layers = keras.layers
    if pooling not in ("cls", "mean"):
        raise ValueError(f"Expected pooling 'cls' or 'mean'. Received: pooling={pooling!r}")
    if pooling == "cls":
        tokens = ClassToken(name="class_token")(tokens)
    x = PositionEmbedding(name="position_embedding")(tokens)
    for i in range(depth):
        x = encoder_block(x, i, heads=heads, mlp_dim=mlp_dim)
    x = layers.LayerNormalization(epsilon=LN_EPSILON, name="final_norm")(x)
    if pooling == "cls":
        x = layers.Cropping1D((0, x.shape[1] - 1), name="cls_select")(x)
        x = layers.Flatten(name="pool")(x)
    else:
        x = layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(num_classes, name="logits")(x), name=name)


def _pad_to_patches(x, patch, grid):
    """Zero-pads each side to ``grid * patch`` (split evenly, the odd pixel at the end)."""
    pads = []
    for side, p, g, axis in zip(x.shape[1:3], patch, grid, ("rows", "cols")):
        if g * p < side:
            raise ValueError(f"Expected grid * patch_size to cover the image: {axis} {g} x {p} < {side}. Received: grid={grid}, patch_size={patch}")
        extra = g * p - side
        pads.append((extra // 2, extra - extra // 2))
    if any(sum(pad) for pad in pads):
        x = keras.layers.ZeroPadding2D(tuple(pads), name="patch_padding")(x)
    return x


def vit_classifier(input_shape, num_classes, *, patch_size, dim, depth, heads, mlp_dim, pooling="mean", grid=None, name="vit"):
    """A Vision Transformer classifier (Functional tf_keras model) that outputs logits.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: number of logits.
        patch_size: int or ``(ph, pw)``; sides it does not divide are zero-padded.
        dim: token width; must be divisible by ``heads``.
        depth: number of encoder blocks (layers ``block0_*`` ... ``block{depth-1}_*``).
        heads: attention heads.
        mlp_dim: hidden width of each block's MLP.
        pooling: ``"mean"`` (average of the tokens) or ``"cls"`` (a learned class token).
        grid: ``(rows, cols)`` of patch tokens; the image is zero-padded to ``grid *
            patch_size``. Default: ``ceil(side / patch)`` per axis.
        name: model name.
    """
    patch = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    _check_positive(dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim, num_classes=num_classes, **{f"patch_size[{i}]": p for i, p in enumerate(patch)})
    if dim % heads:
        raise ValueError(f"Expected `dim` divisible by `heads`. Received: dim={dim}, heads={heads}")
    if len(input_shape) != 3 or None in input_shape:
        raise ValueError(f"Expected input_shape (height, width, channels) with known sizes. Received: input_shape={input_shape!r}")
    inputs = keras.Input(input_shape, name="image")
    grid = tuple(grid) if grid is not None else tuple(-(-side // p) for side, p in zip(input_shape[:2], patch))
    x = keras.layers.Conv2D(dim, patch, strides=patch, name="patch_embedding")(_pad_to_patches(inputs, patch, grid))
    tokens = keras.layers.Reshape((x.shape[1] * x.shape[2], dim), name="patch_tokens")(x)
    return _encoder_head(tokens, inputs, num_classes, depth, heads, mlp_dim, pooling, name)


def text_classifier(vocab_size, seq_len, num_classes, *, dim=64, depth=2, heads=4, mlp_dim=128, pooling="mean", name="text_transformer"):
    """A Transformer classifier on token ids ``(batch, seq_len)`` (int32): Embedding +
    learned positions + the same encoder blocks as :func:`vit_classifier`.

    Mean pooling averages every position, padding (id 0) included: no mask, so the
    model converts to TFLite builtins; pad consistently (``TextVectorization`` does).
    """
    _check_positive(vocab_size=vocab_size, seq_len=seq_len, num_classes=num_classes, dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim)
    if dim % heads:
        raise ValueError(f"Expected `dim` divisible by `heads`. Received: dim={dim}, heads={heads}")
    inputs = keras.Input((seq_len,), dtype="int32", name="token_ids")
    tokens = keras.layers.Embedding(vocab_size, dim, name="token_embedding")(inputs)
    return _encoder_head(tokens, inputs, num_classes, depth, heads, mlp_dim, pooling, name)


def preset_patch_size(input_shape, grid=PRESET_GRID):
    """The presets' patch size: ``ceil(side / grid)`` per axis (a ``grid x grid`` token grid)."""
    return tuple(max(1, math.ceil(side / grid)) for side in input_shape[:2])


def vit_teacher(input_shape=(28, 28, 1), num_classes=10, name="teacher"):
    """ViT teacher: dim 96, 4 blocks, 4 heads, MLP 192, mean pooling, 7x7 tokens
    (patch 4 at 28x28): about 0.31 M parameters at 28x28x1."""
    return vit_classifier(input_shape, num_classes, patch_size=preset_patch_size(input_shape), grid=(PRESET_GRID,) * 2,
                          dim=96, depth=4, heads=4, mlp_dim=192, name=name)


def vit_student(input_shape=(28, 28, 1), num_classes=10, name="student"):
    """ViT student: dim 48, 2 blocks, 4 heads (the teacher's, so attention maps transfer
    head by head), MLP 96, mean pooling, 7x7 tokens: about 41 k parameters at 28x28x1."""
    return vit_classifier(input_shape, num_classes, patch_size=preset_patch_size(input_shape), grid=(PRESET_GRID,) * 2,
                          dim=48, depth=2, heads=4, mlp_dim=96, name=name)


PRESETS = {"vit_teacher": vit_teacher, "vit_student": vit_student}

# TF-MOT's wrappers (pruning, clustering, QAT) prefix the layer names; the taps find a layer under them by its own name
_WRAPPED = "^(?:" + "|".join(map(re.escape, WRAPPER_PREFIXES)) + ")*"
_BLOCK_LAYER = {"attention": re.compile(_WRAPPED + r"(block(\d+)_attention_scores)$"), "hidden": re.compile(_WRAPPED + r"(block(\d+)_output)$")}


def block_layer_names(model, kind="attention"):
    """Names of each block's attention-weights (``kind="attention"``) or hidden-state
    (``kind="hidden"``) layer, in block order."""
    if kind not in _BLOCK_LAYER:
        raise ValueError(f"Expected kind 'attention' or 'hidden'. Received: kind={kind!r}")
    found = sorted((int(m.group(2)), m.group(1)) for layer in model.layers if (m := _BLOCK_LAYER[kind].match(layer.name)))
    if not found:
        raise ValueError(
            f"Model '{model.name}' has no layer named block<i>_{'attention_scores' if kind == 'attention' else 'output'}: "
            "build it with kdtf.models.vit (vit_classifier, text_classifier) or name its layers that way."
        )
    return [name for _, name in found]


def uniform_block_mapping(student_blocks, teacher_blocks):
    """Teacher block index for each student block: ``ceil((i + 1) * L_t / L_s) - 1``
    (student block ``i`` learns from the last teacher block of its share; the last
    student block always maps to the last teacher block)."""
    _check_positive(student_blocks=student_blocks, teacher_blocks=teacher_blocks)
    return [-(-(i + 1) * teacher_blocks // student_blocks) - 1 for i in range(student_blocks)]


def block_pairs(student, teacher, kind="attention"):
    """``[(student_layer, teacher_layer), ...]``: each student block's ``kind`` layer
    (see :func:`block_layer_names`) and the teacher's on the uniform block mapping."""
    s_names, t_names = block_layer_names(student, kind), block_layer_names(teacher, kind)
    return [(s, t_names[j]) for s, j in zip(s_names, uniform_block_mapping(len(s_names), len(t_names)))]
