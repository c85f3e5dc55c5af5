"""The run's hook for ``--cache-teacher views:K[:TOPK]``: a view store feeds every stage
that distills (the distilled student and each compression step's fine-tuning).

Kept apart from :mod:`kdtf.pipeline` so the hook is two lines there.
"""

from kdtf.cli import log
from kdtf.data.view_store import ViewStore
from kdtf.distiller import Distiller
from kdtf.distribute import several_workers
from kdtf.view_options import is_views_option, parse_views_option

__all__ = ["check_view_store", "uses_view_store", "view_store_data"]


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


def view_store_data(ctx, student, teacher):
    """The distillation pipeline of a run from its view store (built once under
    ``--cache-dir``, reused by later runs with the same key); records K, k, the bytes and
    the pass's seconds in ``data.meta["view_store"]`` (``report.json``)."""
    config, data = ctx.config, ctx.data
    if several_workers():  # each worker reads its own files; the teacher runs on them
        log("several workers: the teacher runs on each worker's share of the files (no view store)")
        return ctx.train_ds
    views, top_k = parse_views_option(config.cache_teacher)
    distiller = Distiller(student, teacher, ctx.spec)
    store = ViewStore.for_distiller(distiller, data, config.augment, views=views, top_k=top_k, cache_dir=config.cache_dir,
                                    seed=config.seed, batch_size=config.batch_size)
    ctx.runner.time("view_store_s", store.build)
    data.meta["view_store"] = store.describe()
    done = "reused" if store.reused else f"written in {store.pass_seconds:.1f} s"
    log(f"view store: {views} views x {data.size('train')} examples, top-{store.top_k} at T={ctx.spec.temperature} "
        f"({store.bytes / 2**20:.1f} MiB, {done}); training replays stored views instead of running the teacher")
    return store.dataset(config.batch_size, seed=config.seed)
