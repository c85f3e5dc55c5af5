"""Labels as the Distiller reads them: sparse or one-hot, with unlabeled examples.

An unlabeled example (a transfer-set image) carries the sparse label ``-1`` or an
all-zero one-hot row; it trains on the distillation terms only.
"""

from kdtf._keras import keras, tf

__all__ = ["is_one_hot", "label_mask", "cross_entropy", "masked_mean"]


def is_one_hot(labels, logits):
    """True when ``labels`` are one-hot (or mixed, after MixUp/CutMix) rows for ``logits``."""
    classes = logits.shape[-1]
    return labels.shape.rank == logits.shape.rank and labels.shape[-1] == classes and classes != 1


def label_mask(labels, logits):
    """1.0 for labelled examples, 0.0 for unlabeled ones, shape ``(batch,)``."""
    if is_one_hot(labels, logits):
        return tf.cast(tf.reduce_sum(tf.cast(labels, tf.float32), axis=-1) > 0, tf.float32)
    return tf.cast(tf.reshape(labels, [-1]) >= 0, tf.float32)


def cross_entropy(labels, logits):
    """Per-example cross-entropy from logits; one-hot or sparse labels are detected.
    Unlabeled examples get a finite placeholder value; mask them with :func:`label_mask`."""
    logits = tf.cast(logits, tf.float32)
    if is_one_hot(labels, logits):
        return keras.losses.categorical_crossentropy(tf.cast(labels, tf.float32), logits, from_logits=True)
    return keras.losses.sparse_categorical_crossentropy(tf.maximum(labels, 0), logits, from_logits=True)


def masked_mean(values, mask, sample_weight):
    """Sum over labelled examples / their number: equals the plain (weighted) batch mean
    when every example is labelled, and 0 when none is."""
    weights = mask if sample_weight is None else mask * tf.reshape(tf.cast(sample_weight, values.dtype), tf.shape(mask))
    return tf.math.divide_no_nan(tf.reduce_sum(values * weights), tf.reduce_sum(mask))
