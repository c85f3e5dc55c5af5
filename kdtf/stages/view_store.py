"""The view store as the run's teacher-output stage (``--cache-teacher views:K[:TOPK]``):
the teacher's top-k probabilities on K replayable augmented views of every training
example, written once under ``--cache-dir`` (:class:`kdtf.data.ViewStore`) and read by
every stage that distills (the distilled student, each compression step's fine-tuning).
"""

import dataclasses

from kdtf._keras import keras
from kdtf.data.view_store import ViewStore
from kdtf.distiller import Distiller
from kdtf.distribute import several_workers
from kdtf.stages.runner import Record
from kdtf.stages.teacher_outputs import TeacherOutputsStage
from kdtf.view_options import is_views_option, parse_views_option

__all__ = ["ViewStoreRecord", "ViewStoreStage", "check_view_store", "uses_view_store"]


def uses_view_store(config):
    """Whether the run distils from a view store."""
    return is_views_option(config.cache_teacher)


def check_view_store(config, data):
    """Refuses a top-k above the data's classes before anything is trained or written."""
    if uses_view_store(config):
        _, top_k = parse_views_option(config.cache_teacher)
        if isinstance(top_k, int) and top_k > data.num_classes:
            raise ValueError(f"Expected TOPK <= the {data.num_classes} classes of {data.name} in --cache-teacher "
                             f"{config.cache_teacher} (or 'all'). Received: TOPK={top_k}")


@dataclasses.dataclass
class ViewStoreRecord(Record):
    """The store's K, k, size on disk and pass seconds (``report.json``'s ``view_store``)."""

    views: int = 0
    top_k: int = 0
    bytes: int = 0
    bytes_per_example: float = 0.0
    pass_s: float = 0.0
    reused: bool = False
    resumed_at: int = 0

    def report_sections(self):
        return {"view_store": dataclasses.asdict(self)}


@dataclasses.dataclass
class ViewStoreStage(TeacherOutputsStage):
    """Its product is the distillation pipeline from the view store: batches
    ``({"x": x, "teacher_outputs": (pseudo-logits, *features)}, y)`` of one stored view
    per example and epoch (several workers: the plain pipeline, teacher every step)."""

    record_type = ViewStoreRecord

    @property
    def timing(self):
        return "view_store_s"

    def describe(self):
        views, top_k = parse_views_option(self.ctx.config.cache_teacher)
        return f"the teacher's top-{top_k or 5} probabilities on {views} replayable views of each example, stored once"

    def train(self, callbacks):
        ctx, config = self.ctx, self.ctx.config
        self.store = None
        if several_workers():  # each worker reads its own files; the teacher runs on them
            ctx.log("several workers: the teacher runs on each worker's share of the files (no view store)")
            return ctx.train_ds
        views, top_k = parse_views_option(config.cache_teacher)
        keras.utils.set_random_seed(config.seed + 1)  # the student only names the layers the terms tap
        student = ctx.build("student", config.student, config.student_weights)
        distiller = Distiller(student, self.teacher.product, ctx.spec)
        self.store = ViewStore.for_distiller(distiller, ctx.data, config.augment, views=views, top_k=top_k,
                                             cache_dir=config.cache_dir, seed=config.seed, batch_size=config.batch_size)
        self.store.build()
        done = "reused" if self.store.reused else f"written in {self.store.pass_seconds:.1f} s"
        ctx.log(f"view store: {views} views x {ctx.data.size('train')} examples, top-{self.store.top_k} at "
                f"T={ctx.spec.temperature} ({self.store.bytes / 2**20:.1f} MiB, {done}); training replays stored views "
                "instead of running the teacher")
        return self.store.dataset(config.batch_size, seed=config.seed)

    def measure(self, product, paths):
        if self.store is None:
            return ViewStoreRecord()
        fields = {f.name for f in dataclasses.fields(ViewStoreRecord)}
        return ViewStoreRecord(**{k: v for k, v in self.store.describe().items() if k in fields})
