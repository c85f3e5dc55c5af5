"""The ``--mutual N`` stage of ``scripts/distill.py``: ``N`` peers of ``--student`` trained
together by :class:`kdtf.MutualDistiller` (Deep Mutual Learning, Zhang et al., CVPR 2018,
arXiv:1706.00384), beside the run's teacher with ``--mutual-teacher``.

The peers are saved as ``mutual0.keras`` ... ``mutual{N-1}.keras``; the stage table's row
is peer 0 (which starts from the scratch and distilled student's initial weights), and
the report's ``mutual`` section lists every peer's test accuracy.
"""

import dataclasses
import os

from kdtf._keras import keras
from kdtf.mutual import MutualDistiller
from kdtf.saving import load_model, save_model
from kdtf.stages.context import RunContext
from kdtf.stages.runner import Record, Stage
from kdtf.stages.teacher import TeacherStage
from kdtf.stages.teacher_outputs import TeacherOutputsStage

__all__ = ["MutualStage", "MutualRecord"]


@dataclasses.dataclass
class MutualRecord(Record):
    """Peer 0's row of the stage table, and every peer's test accuracy."""

    row: dict
    peer_accuracies: list
    with_teacher: bool

    def report_sections(self):
        return {"stages": [self.row], "mutual": {"peer_accuracies": self.peer_accuracies, "with_teacher": self.with_teacher}}


@dataclasses.dataclass
class MutualStage(Stage):
    """``config.mutual`` peers trained together for ``--epochs`` on the pipeline of
    ``outputs`` (every training image; unlabeled ones through the peer and teacher
    terms), with the run's training recipe. Without ``--mutual-teacher`` the peers learn
    from each other alone at T = 1 (the paper's setting); with it, also from the teacher
    at the run's temperature and alpha."""

    ctx: RunContext
    teacher: TeacherStage
    outputs: TeacherOutputsStage
    name = "mutual"
    record_type = MutualRecord

    def describe(self):
        config, spec = self.ctx.config, self.ctx.spec
        beside = (f"beside the teacher (T = {spec.temperature:g}, alpha = {spec.alpha:g})" if config.mutual_teacher
                  else "without a teacher (T = 1)")
        return f"{config.mutual} x {config.student} trained together by Deep Mutual Learning {beside} for {config.epochs} epochs"

    def _files(self):
        return [os.path.join(self.ctx.out, f"mutual{k}.keras") for k in range(self.ctx.config.mutual)]

    def train(self, callbacks):
        ctx, config = self.ctx, self.ctx.config
        peers = []
        for k in range(config.mutual):
            keras.utils.set_random_seed(config.seed + 1 + k)  # peer 0: the scratch student's initial weights
            peers.append(ctx.build(f"mutual{k}", config.student, None))
        teacher = self.teacher.product if config.mutual_teacher else None
        temperature = ctx.spec.temperature if teacher is not None else 1.0
        mutual = MutualDistiller(peers, teacher, temperature=temperature, alpha=ctx.spec.alpha)
        mutual.compile(ctx.optimizer(config.learning_rate)(config.epochs, ctx.steps), metrics=["accuracy"])
        mutual.fit(self.outputs.product, steps_per_epoch=ctx.steps, epochs=config.epochs, validation_data=ctx.val_ds,
                   callbacks=callbacks, verbose=ctx.verbose)
        return peers

    def save(self, peers):
        return [save_model(peer, path) for peer, path in zip(peers, self._files())]

    def measure(self, peers, paths):
        row = self.ctx.measured(self.name, peers[0], paths)
        scores = [row["accuracy"]] + [self.ctx.accuracy(peer, "test") for peer in peers[1:]]
        self.ctx.log(f"stage mutual: test accuracy of each peer {', '.join(f'{s:.4f}' for s in scores)}")
        return MutualRecord(row=row, peer_accuracies=scores, with_teacher=bool(self.ctx.config.mutual_teacher))

    def load(self, record):
        return [load_model(path) for path in self._files()]
