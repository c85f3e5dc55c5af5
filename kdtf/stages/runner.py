"""A run as a list of stage objects, and the one runner that executes them.

A :class:`Stage` says what it trains or builds (:meth:`Stage.train`), which files it
writes (:meth:`Stage.save`) and what it measures (:meth:`Stage.measure`, a typed
:class:`Record`). :class:`StageRunner` does the rest for every pipeline (distillation and
BYOL): skip a stage the run folder's manifest marks complete (loading its product
instead), give the training its ``BackupAndRestore`` checkpoint so a killed run resumes
mid-stage, time it, save and measure it, and record it in the manifest.

A stage's inputs are the stages it reads, held as typed attributes: after the runner has
run (or loaded) a stage, its :attr:`Stage.product` and :attr:`Stage.record` are set, so a
later stage reads ``self.teacher.product`` (the model) and
``self.teacher.record.val_accuracy``; nothing travels through string keys.
"""

import dataclasses
import time

__all__ = ["Record", "Stage", "StageRunner"]


@dataclasses.dataclass
class Record:
    """What a stage measured: stored in the run folder's manifest (as JSON, through
    :func:`dataclasses.asdict`) and read back into the same class on ``--resume``, so its
    fields are plain JSON values. Subclasses add fields and say what the report shows
    of them (:meth:`report_sections`)."""

    def report_sections(self):
        """``{report key: value}`` this record adds to the run's report: a list is
        appended to the lists of the other records under the same key (the stage table's
        ``"stages"`` rows), a dict merged into theirs, anything else set."""
        return {}


class Stage:
    """One stage of a run. Subclasses set :attr:`name` and :attr:`record_type` and
    implement :meth:`describe`, :meth:`train` and :meth:`measure` (and :meth:`save`,
    :meth:`load` when the stage writes files).

    Attributes:
        name: its key in the manifest (``"teacher"``, ``"compress"``).
        record_type: the :class:`Record` subclass :meth:`measure` returns.
        timing: key of its training seconds in the run's timings (``None``: ``<name>_s``;
            ``""``: not timed).
        product: what :meth:`train` or :meth:`load` returned, once the runner ran it.
        record: its record, once the runner ran it.
    """

    name = ""
    record_type = Record
    timing = None
    product = None
    record = None

    def describe(self):
        """What the stage does, for the log line when it runs."""
        return self.name

    def train(self, callbacks):
        """Builds or trains the product (a model, usually); ``callbacks`` holds the
        stage's ``BackupAndRestore``."""
        raise NotImplementedError

    def save(self, product):
        """Writes the stage's files (atomically); returns their paths."""
        return []

    def measure(self, product, paths):
        """The stage's :attr:`record_type` record: what the report shows, plus whatever
        :meth:`load` needs."""
        raise NotImplementedError

    def load(self, record):
        """The product of this stage completed before (``--resume``)."""
        return None

    def accept(self, record):
        """Called after the stage ran or was loaded: raises ValueError when the run must
        stop here (a teacher that learned nothing)."""


class StageRunner:
    """Runs stages against a run folder's :class:`kdtf.runstate.RunState`.

    Attributes:
        timings: seconds per stage trained in this process (a resumed run times only
            what it ran).
        stages: the stages run or loaded, in order.
    """

    def __init__(self, state, log=print):
        self.state, self.log = state, log
        self.timings, self.stages = {}, []

    def run_all(self, stages):
        """Runs ``stages`` in order; returns the last one's product."""
        product = None
        for stage in stages:
            product = self.run(stage)
        return product

    def run(self, stage):
        """The stage's product: loaded when the manifest marks the stage complete, else
        trained, saved, measured and recorded."""
        if self.state.done(stage.name):
            record = stage.record_type(**self.state.record(stage.name))
            product = stage.load(record)
            self.log(f"stage {stage.name}: completed before, loaded from the run folder")
        else:
            self.log(f"stage {stage.name}: {stage.describe()}")
            started = time.time()
            product = stage.train(self.state.callbacks(stage.name))
            key = f"{stage.name}_s" if stage.timing is None else stage.timing
            if key:
                self.timings[key] = time.time() - started
            files = stage.save(product)
            record = stage.measure(product, files)
            self.state.complete(stage.name, dataclasses.asdict(record), files)
        stage.product, stage.record = product, record
        stage.accept(record)
        self.stages.append(stage)
        return product

    @property
    def records(self):
        """The records of the stages run or loaded, in order."""
        return [stage.record for stage in self.stages]

