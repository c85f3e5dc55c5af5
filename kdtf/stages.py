"""A run as a list of stages, and the one runner that executes them.

A :class:`Stage` says what it trains or builds, which files it writes and what it
measures; :class:`StageRunner` does the rest for every pipeline (distillation and BYOL):
skip a stage the run folder's manifest marks complete (loading its product instead),
give the training its ``BackupAndRestore`` checkpoint so a killed run resumes mid-stage,
time it, save and measure it, and record it in the manifest.
"""

import dataclasses
import time

__all__ = ["Stage", "StageRunner"]


@dataclasses.dataclass
class Stage:
    """One stage of a run.

    Attributes:
        name: its key in the manifest (``"teacher"``, ``"compress"``).
        describe: what it does, for the log line when it runs.
        train: ``train(callbacks) -> product`` (a model, usually); ``callbacks`` holds
            the stage's ``BackupAndRestore``.
        save: ``save(product) -> [paths]``: writes the stage's files (atomically).
        measure: ``measure(product, paths) -> record``: what the report shows, plus
            whatever :attr:`load` needs; stored in the manifest.
        load: ``load(record) -> product``: the product of a stage completed before.
        timing: key of its seconds in the run's timings (default ``<name>_s``).
    """

    name: str
    describe: str
    train: object
    save: object
    measure: object
    load: object
    timing: str = None


class StageRunner:
    """Runs stages against a run folder's :class:`kdtf.runstate.RunState`.

    Attributes:
        timings: seconds per stage trained in this process (a resumed run times only
            what it ran).
        records: ``{stage name: record}`` of every stage, run or loaded.
    """

    def __init__(self, state, log=print):
        self.state, self.log = state, log
        self.timings, self.records = {}, {}

    def run(self, stage):
        """The stage's product: loaded when the manifest marks the stage complete, else
        trained, saved, measured and recorded."""
        if self.state.done(stage.name):
            record = self.state.record(stage.name)
            product = stage.load(record)
            self.log(f"stage {stage.name}: completed before, loaded from the run folder")
        else:
            self.log(f"stage {stage.name}: {stage.describe}")
            started = time.time()
            product = stage.train(self.state.callbacks(stage.name))
            self.timings[stage.timing or f"{stage.name}_s"] = time.time() - started
            files = stage.save(product)
            record = stage.measure(product, files)
            self.state.complete(stage.name, record, files)
        self.records[stage.name] = record
        return product

    def time(self, key, function, *args, **kwargs):
        """Runs ``function`` and adds its seconds to :attr:`timings` under ``key``."""
        started = time.time()
        result = function(*args, **kwargs)
        self.timings[key] = time.time() - started
        return result
