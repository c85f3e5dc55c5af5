"""The view store as the run's teacher-output stage (``--cache-teacher views:K[:TOPK]``):
the teacher's top-k probabilities on K replayable augmented views of every training
example, written once under ``--cache-dir`` (:class:`kdtf.data.ViewStore`) and read by
every stage that distills (the distilled student, each compression step's fine-tuning).

``--cache-teacher auto`` (the default) chooses ``views:8`` when ``--augment`` is on and
replayable, the training images can be read by position (in memory or in the
``--cache-dir`` image cache), the run's terms read softened probabilities, and the
store, whose size is known before the pass, takes at most half of the free disk under
``--cache-dir`` (a margin for the checkpoints and exports written after it). Otherwise
the teacher runs on every augmented batch, as before, and the log and ``report.json``
say why.
"""

import dataclasses
import os
import shutil

from kdtf._keras import keras
from kdtf.data.view_store import ViewStore
from kdtf.distiller import Distiller
from kdtf.distribute import several_workers
from kdtf.stages.runner import Record
from kdtf.stages.teacher_outputs import TeacherOutputsStage
from kdtf.view_options import AUTO_DISK_SHARE, auto_views, is_views_option, parse_views_option

__all__ = ["ViewStoreRecord", "ViewStoreStage", "auto_refusal", "check_view_store", "store_option", "uses_view_store"]


def store_option(config):
    """The ``views:K[:TOPK]`` the run asks for (``--cache-teacher auto`` with a replayable
    ``--augment``: ``views:8``), or ``None``."""
    return config.cache_teacher if is_views_option(config.cache_teacher) else auto_views(config.cache_teacher, config.augment)


def uses_view_store(config):
    """Whether the run distils from a view store (``auto``: if it fits, see :func:`auto_refusal`)."""
    return store_option(config) is not None


def auto_refusal(make_store, data, cache_dir, share=AUTO_DISK_SHARE):
    """Why ``--cache-teacher auto`` does not write a view store, or ``None`` when it does.

    Args:
        make_store: ``() -> ViewStore`` (raises ValueError when the run's terms cannot
            read a store).
        data: the run's :class:`kdtf.data.Splits`.
        cache_dir: the folder of the store.
        share: the largest share of the free disk under ``cache_dir`` the store may take.

    Returns:
        ``(store, None)`` or ``(None, reason)``.
    """
    if not cache_dir:
        return None, "no --cache-dir to write a view store to"
    if not data.table("train").random_access:
        return None, "the training images are decoded from their files on every pass (no image cache)"
    try:
        store = make_store()
    except ValueError as error:
        return None, str(error).split(". ")[0]
    if store.complete:
        return store, None
    need = store.planned_bytes()
    os.makedirs(cache_dir, exist_ok=True)
    free = shutil.disk_usage(cache_dir).free
    if need > share * free:
        return None, (f"the view store would take {need / 2**20:.1f} MiB, more than {share:.0%} of the "
                      f"{free / 2**20:.0f} MiB free under {cache_dir!r}")
    return store, None


def check_view_store(config, data):
    """Refuses a top-k above the data's classes before anything is trained or written."""
    if uses_view_store(config):
        _, top_k = parse_views_option(store_option(config))
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
    auto: str = ""  # --cache-teacher auto: "chosen", or why the teacher runs every step instead

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
        views, top_k = parse_views_option(store_option(self.ctx.config))
        auto = "" if is_views_option(self.ctx.config.cache_teacher) else " (auto: when it fits the disk)"
        return f"the teacher's top-{top_k or 5} probabilities on {views} replayable views of each example, stored once{auto}"

    def train(self, callbacks):
        ctx, config = self.ctx, self.ctx.config
        self.store, self.auto = None, ""
        if several_workers():  # each worker reads its own files; the teacher runs on them
            ctx.log("several workers: the teacher runs on each worker's share of the files (no view store)")
            return ctx.train_ds
        views, top_k = parse_views_option(store_option(config))
        keras.utils.set_random_seed(config.seed + 1)  # the student only names the layers the terms tap
        student = ctx.build("student", config.student, config.student_weights)
        distiller = Distiller(student, self.teacher.product, ctx.spec)

        def make_store():
            return ViewStore.for_distiller(distiller, ctx.data, config.augment, views=views, top_k=top_k,
                                           cache_dir=config.cache_dir, seed=config.seed, batch_size=config.batch_size)

        if is_views_option(config.cache_teacher):
            self.store = make_store()
        else:
            self.store, refusal = auto_refusal(make_store, ctx.data, config.cache_dir)
            self.auto = refusal or "chosen"
            if refusal:
                ctx.log(f"--cache-teacher auto: no view store ({refusal}); the teacher runs on every augmented batch")
                return ctx.train_ds
        self.store.build()
        done = "reused" if self.store.reused else f"written in {self.store.pass_seconds:.1f} s"
        ctx.log(f"view store: {views} views x {ctx.data.size('train')} examples, top-{self.store.top_k} at "
                f"T={ctx.spec.temperature} ({self.store.bytes / 2**20:.1f} MiB, {done}); training replays stored views "
                "instead of running the teacher")
        return self.store.dataset(config.batch_size, seed=config.seed)

    def measure(self, product, paths):
        if self.store is None:
            return ViewStoreRecord(auto=self.auto)
        fields = {f.name for f in dataclasses.fields(ViewStoreRecord)}
        return ViewStoreRecord(auto=self.auto, **{k: v for k, v in self.store.describe().items() if k in fields})
