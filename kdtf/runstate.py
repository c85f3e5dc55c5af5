"""What a run folder has finished: ``RUN_DIR/manifest.json``, for ``--resume``.

The manifest lists the completed stages with their records (what the report shows) and
the files they wrote. A stage in progress keeps a Keras ``BackupAndRestore`` checkpoint in
``RUN_DIR/.backup/<stage>/`` (weights, optimizer state, epoch; for the Distiller also
its adapters, for pruned models the pruning step), so a killed run continues from its
last completed epoch. Every write is atomic (temporary name, then rename).
"""

import json
import os
import shutil

from kdtf._keras import keras
from kdtf.io import write_text
from kdtf.saving import load_model, save_model

__all__ = ["RunState", "StepCheckpoint", "MANIFEST"]

MANIFEST = "manifest.json"


class RunState:
    """Completed stages of the run in ``folder``.

    Args:
        folder: the run folder.
        args: the run's arguments (recorded in the manifest).
        resume: continue the manifest found in ``folder`` (it must exist); otherwise
            start a new one, refusing a folder that already holds completed stages.
    """

    def __init__(self, folder, args, resume=False):
        self.folder = folder
        self.path = os.path.join(folder, MANIFEST)
        exists = os.path.exists(self.path)
        if resume:
            if not exists:
                raise ValueError(
                    f"Cannot resume {folder!r}: it has no {MANIFEST} (not a kdtf run folder, or "
                    "the run was killed before it started). Start it again without --resume."
                )
            try:
                with open(self.path) as f:
                    self.data = json.load(f)
            except (OSError, json.JSONDecodeError) as error:
                raise ValueError(f"Cannot resume {folder!r}: {MANIFEST} is unreadable ({error}).") from None
        else:
            if exists:
                with open(self.path) as f:
                    previous = json.load(f)
                if previous.get("stages"):
                    raise ValueError(
                        f"--output {folder!r} already holds a run ({len(previous['stages'])} completed "
                        f"stage(s) in {MANIFEST}); continue it with --resume {folder}, or choose another --output."
                    )
            self.data = {"args": args, "stages": {}, "complete": False}
            self._write()

    def _write(self):
        write_text(self.path, json.dumps(self.data, indent=2, default=str))

    def done(self, stage):
        return stage in self.data["stages"]

    def record(self, stage):
        return self.data["stages"][stage]["record"]

    def complete(self, stage, record=None, files=()):
        """Marks ``stage`` complete and drops its epoch checkpoint."""
        self.data["stages"][stage] = {"record": record, "files": list(files)}
        self._write()
        shutil.rmtree(self.backup_dir(stage), ignore_errors=True)

    def finish(self):
        self.data["complete"] = True
        self._write()
        for scratch in (".backup", ".stages"):  # epoch checkpoints, models between compression steps
            shutil.rmtree(os.path.join(self.folder, scratch), ignore_errors=True)

    def backup_dir(self, stage):
        return os.path.join(self.folder, ".backup", stage.replace(":", "-").replace("/", "-"))

    def callbacks(self, stage):
        """For the fit of ``stage``: ``BackupAndRestore`` (resumes from its last epoch) and
        ``TensorBoard`` logs under ``RUN_DIR/logs/<stage>`` (``tensorboard --logdir RUN_DIR/logs``)."""
        logs = os.path.join(self.folder, "logs", stage.replace(":", "-").replace("/", "-"))
        return [
            keras.callbacks.BackupAndRestore(self.backup_dir(stage)),
            keras.callbacks.TensorBoard(logs, write_graph=False, profile_batch=0),
        ]


class StepCheckpoint:
    """For :meth:`kdtf.compress.Recipe.run`: saves the model after each compression
    step but the last (``RUN_DIR/.stages/``) and gives it back on ``--resume``, so a
    finished step is not redone."""

    def __init__(self, state, out):
        self.state, self.out = state, out

    def load_step(self, index):
        if not self.state.done(f"compress:{index}"):
            return None
        record = self.state.record(f"compress:{index}")
        return load_model(os.path.join(self.out, record["file"])), record["step"]

    def callbacks(self, index):
        """``BackupAndRestore`` for the fine-tuning of step ``index``."""
        return self.state.callbacks(f"compress:{index}")

    def save_step(self, index, model, record):
        """Saves the model after step ``index`` and its result's record."""
        path = save_model(model, os.path.join(self.out, ".stages", f"compress-{index}.keras"))
        self.state.complete(f"compress:{index}", {"file": os.path.relpath(path, self.out), "step": record}, [path])
