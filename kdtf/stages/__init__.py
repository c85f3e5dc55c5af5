"""Stages of a run and the runner that executes them (:mod:`kdtf.stages.runner`).

The distillation run's stages, one module each, in the order of the flow:
:mod:`~kdtf.stages.teacher` (trained, cached or the user's) ->
:mod:`~kdtf.stages.students` (scratch baseline, distilled student) ->
:mod:`~kdtf.stages.teacher_outputs` (the teacher-output store) ->
:mod:`~kdtf.stages.compression` -> :mod:`~kdtf.stages.export`; they share a
:class:`~kdtf.stages.context.RunContext`. :mod:`kdtf.pipeline` lists them.
"""

from kdtf.stages.runner import Record, Stage, StageRunner

__all__ = ["Record", "Stage", "StageRunner"]
