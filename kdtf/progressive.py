"""Layer-wise (progressive) distillation of Transformer students, block by block.

Stage ``k`` trains the student on the block terms of its first ``k + 1`` blocks only
(the hidden states, and the attention matrices, of each student block against its
mapped teacher block), so the lower blocks settle before the upper ones learn from them;
the end-to-end distillation with the run's full spec follows (Jiao et al., "TinyBERT",
2020, and the stage-wise recipe of Sun et al., "Patient Knowledge Distillation", 2019).
The loss of stage ``k`` does not depend on the blocks above ``k`` or on the classifier,
so they receive no gradient and need no freezing.
"""

from kdtf.models.vit import block_pairs
from kdtf.spec import DistillSpec, TermSpec
from kdtf.training import fit

__all__ = ["progressive_specs", "progressive_distillation"]


def progressive_specs(student, teacher, kinds=("hidden", "attention"), weights=None):
    """One :class:`DistillSpec` per student block: label-free (``alpha=0``), the block
    terms of ``kinds`` for every mapped pair up to that block."""
    weights = dict(weights or {})
    pairs = {kind: block_pairs(student, teacher, kind) for kind in kinds}
    blocks = len(next(iter(pairs.values())))
    specs = []
    for k in range(blocks):
        terms = [TermSpec(kind, weights.get(kind, 1.0), s, t) for kind in kinds for s, t in pairs[kind][: k + 1]]
        specs.append(DistillSpec(alpha=0.0, terms=terms))
    return specs


def progressive_distillation(student, teacher, train_data, *, epochs_per_block, optimizer=1e-3, steps_per_epoch=None,
                             kinds=("hidden", "attention"), weights=None, callbacks=None, verbose=0, log=None):
    """Trains ``student`` stage by stage (see the module docstring); returns the
    ``History.history`` of each stage. Follow it with the end-to-end distillation.

    Args:
        student, teacher: :mod:`kdtf.models.vit` models (blocks named ``block{i}_...``).
        train_data: the distillation pipeline (labels are ignored: ``alpha`` is 0).
        epochs_per_block: epochs of each stage.
        optimizer: see :func:`kdtf.training.make_optimizer`.
        kinds: the block terms of each stage.
        weights: ``{kind: weight}`` of the terms (default 1).
    """
    histories = []
    for k, spec in enumerate(progressive_specs(student, teacher, kinds, weights)):
        if log:
            log(f"  progressive stage {k + 1}: blocks 0-{k} on {', '.join(kinds)} for {epochs_per_block} epoch(s)")
        history = fit(student, train_data, epochs=epochs_per_block, optimizer=optimizer, teacher=teacher, spec=spec,
                      steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose, name=f"progressive{k}")
        histories.append(history.history)
    return histories
