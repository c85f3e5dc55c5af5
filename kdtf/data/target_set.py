"""A target-domain set for domain adaptation while distilling (``--target-set``).

Unlabeled images of the domain the student will meet (other cameras, other lighting,
inverted digits ...) are appended to the training split like a transfer set, streamed
the same way, but marked with the sparse label :data:`kdtf.labels.TARGET_LABEL`
(``-2``) instead of ``-1``: unlabeled for the cross-entropy and the metrics, and the
*target rows* of the alignment terms ``mmd`` and ``coral`` (:class:`kdtf.losses.DomainTerm`),
which compare the student's features on them with the teacher's on the other (source)
rows of the same batch. The other distillation terms (``kd`` ...) read every row, as
they read a transfer set.
"""

import numpy as np

from kdtf.labels import TARGET_LABEL

__all__ = ["TARGET_LABEL", "add_target_set", "with_target", "invert", "clutter"]


def add_target_set(splits, spec_or_files, *, data_dir=None):
    """Appends an unlabeled target-domain set to ``splits``' training split.

    Args:
        splits: a :class:`kdtf.data.Splits`.
        spec_or_files: what :meth:`kdtf.data.Splits.add_unlabeled` takes:
            ``folder:PATH`` (every image under it), a list of image files, or a data set
            spec (all its splits, labels dropped). Images are resized to ``splits``'
            input shape.
        data_dir: TFDS data folder.

    Returns:
        The number of target examples added (``splits.meta["target_set"]`` counts them).
    """
    added = splits.add_unlabeled(spec_or_files, data_dir=data_dir)
    labels = splits.labels("train").copy()
    labels[len(labels) - added:] = TARGET_LABEL
    splits.y_train = labels
    splits.meta["transfer_set"] -= added  # add_unlabeled counted them as a transfer set
    splits.meta["target_set"] = splits.meta.get("target_set", 0) + added
    return added


def with_target(x, y, x_target, target_weight=None):
    """In-memory arrays: ``(x, y)`` with the target images appended, labelled
    :data:`TARGET_LABEL`. Shapes must agree (except the count).

    With ``target_weight`` (e.g. 0), also the sample weights ``(x, y, w)``: 1 for the
    source rows, ``target_weight`` for the target rows. The Distiller's other terms
    average ``w * value`` over the batch, so with 0 the target rows reach only the
    alignment terms (which ignore sample weights) and not ``kd``; the cross-entropy never
    reads them."""
    x, x_target = np.asarray(x), np.asarray(x_target)
    if x.shape[1:] != x_target.shape[1:]:
        raise ValueError(
            f"Expected target images of the source's shape {x.shape[1:]}. Received: x_target of shape {x_target.shape[1:]}; "
            "resize them first."
        )
    labels = np.concatenate([np.asarray(y, np.int32).reshape(-1), np.full(len(x_target), TARGET_LABEL, np.int32)])
    joined = np.concatenate([x, x_target.astype(x.dtype)])
    if target_weight is None:
        return joined, labels
    weights = np.where(labels == TARGET_LABEL, float(target_weight), 1.0).astype(np.float32)
    return joined, labels, weights


def invert(x):
    """Colour-inverted images ``1 - x`` (inputs in ``[0, 1]``): a domain shift built
    from any bundled set (white digits on black become black digits on white)."""
    return (1.0 - np.asarray(x, np.float32)).astype(np.float32)


def clutter(x, seed=0, strength=0.6):
    """Images on clutter: each pixel becomes ``max(x, u)`` with ``u`` uniform in
    ``[0, strength]`` (fixed by ``seed``): the bright strokes stay, the dark background
    turns to noise."""
    x = np.asarray(x, np.float32)
    noise = np.random.default_rng(seed).uniform(0.0, strength, x.shape).astype(np.float32)
    return np.maximum(x, noise)
