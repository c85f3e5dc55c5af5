"""The ``--mutual N`` stage of ``scripts/distill.py``: ``N`` peers of ``--student`` trained
together by :class:`kdtf.MutualDistiller` (Deep Mutual Learning, Zhang et al., CVPR 2018),
beside the run's teacher with ``--mutual-teacher``.

The stage reads what the run has prepared (data, steps per epoch, the distillation
pipeline, the training recipe) and writes ``mutual0.keras`` ... ``mutual{N-1}.keras``;
its report row is peer 0 (which starts from the same initial weights as the scratch and
the distilled student), and its record lists every peer's test accuracy.
"""

import os

from kdtf import export
from kdtf._keras import keras
from kdtf.compress import kernel_sparsity
from kdtf.data import accuracy
from kdtf.models import build
from kdtf.mutual import MutualDistiller
from kdtf.optim import add_kernel_regularization, build_optimizer
from kdtf.report import per_image, stage_record
from kdtf.saving import load_model, save_model
from kdtf.stages import Stage

__all__ = ["mutual_stage", "describe"]


def describe(config, spec):
    """One line: what the stage trains."""
    beside = (f"beside the teacher (T = {spec.temperature:g}, alpha = {spec.alpha:g})" if config.mutual_teacher
              else "without a teacher (T = 1)")
    return (f"{config.mutual} x {config.student} trained together by Deep Mutual Learning {beside}, "
            f"{config.epochs} epochs on every training image")


def mutual_stage(run, teacher, log=print):
    """The :class:`kdtf.stages.Stage` of ``run.config.mutual`` peers.

    Args:
        run: the pipeline's run context (``config``, ``spec``, ``data``, ``out``,
            ``steps``, ``train_ds``, ``distill_ds``, ``val_ds``, ``recipe``, ``verbose``).
        teacher: the run's teacher (read only with ``--mutual-teacher``).
        log: where the stage's measurement line goes.
    """
    config, data = run.config, run.data
    files = [os.path.join(run.out, f"mutual{k}.keras") for k in range(config.mutual)]

    def train(callbacks):
        peers = []
        for k in range(config.mutual):
            keras.utils.set_random_seed(config.seed + 1 + k)  # peer 0: the scratch student's initial weights
            peer = build(config.student, data.input_shape, data.num_classes, name=f"mutual{k}")
            peers.append(add_kernel_regularization(peer, *run.recipe.kernel_penalties))
        with_teacher = teacher if config.mutual_teacher else None
        temperature = run.spec.temperature if with_teacher is not None else 1.0
        mutual = MutualDistiller(peers, with_teacher, temperature=temperature, alpha=run.spec.alpha)
        mutual.compile(build_optimizer(run.recipe, run.steps, config.epochs, learning_rate=config.learning_rate),
                       metrics=["accuracy"])
        data_ds = run.distill_ds if run.distill_ds is not None else run.train_ds
        mutual.fit(data_ds, steps_per_epoch=run.steps, epochs=config.epochs, validation_data=run.val_ds,
                   callbacks=callbacks, verbose=run.verbose)
        return peers

    def save(peers):
        return [save_model(peer, path) for peer, path in zip(peers, files)]

    def measure(peers, paths):
        scores = [float(accuracy(peer, data.dataset("test", config.batch_size))) for peer in peers]
        runs = config.latency_runs
        timing = export.latency(export.to_tflite(peers[0], "float32"), num_threads=1, runs=runs) if runs else None
        row = stage_record("mutual", scores[0], "keras", peers[0].count_params(), paths[0], kernel_sparsity(peers[0])[1],
                           timing, "litert, 1 thread, batch 1, TFLite export of this model")
        log(f"stage mutual: test accuracy of each peer {', '.join(f'{s:.4f}' for s in scores)}; {per_image(timing)}")
        return {"row": row, "peer_accuracies": scores, "with_teacher": bool(config.mutual_teacher)}

    def load(record):
        return [load_model(path) for path in files]

    return Stage("mutual", describe(config, run.spec), train, save, measure, load, timing="mutual_s")
