"""``--cache-teacher views:K[:TOPK]``, checked in pure Python before TensorFlow loads
(the store itself is :mod:`kdtf.data.view_store`)."""

from kdtf.catalog import parse_augment

__all__ = ["AUTO_DISK_SHARE", "AUTO_VIEWS", "REPLAYABLE", "auto_views", "check_views_option", "is_views_option",
           "parse_views_option"]

REPLAYABLE = ("flip", "crop", "jitter", "mixup", "cutmix")  # augmentations rebuilt from (seed, example, view)
AUTO_VIEWS = "views:8"  # what --cache-teacher auto stores when --augment is replayable (top-k: the store's default)
AUTO_DISK_SHARE = 0.5  # auto writes a store only when it takes at most this share of the cache folder's free disk


def is_views_option(text):
    """True for a ``views:...`` value of ``--cache-teacher``."""
    return isinstance(text, str) and text.split(":")[0] == "views"


def parse_views_option(text):
    """``"views:K[:TOPK]"`` -> ``(K, top_k)``; ``top_k`` is an int, ``"all"`` or ``None``
    (the store's default). Raises ValueError with the expected form."""
    parts = str(text).split(":")
    if parts[0] != "views" or len(parts) not in (2, 3):
        raise ValueError(f"Expected --cache-teacher views:K[:TOPK] (e.g. views:8:5). Received: {text!r}")
    views, top_k = parts[1], parts[2] if len(parts) == 3 else None
    if not views.isdigit() or int(views) < 1:
        raise ValueError(f"Expected K >= 1 views in --cache-teacher views:K[:TOPK]. Received: K={views!r}")
    if top_k is not None and top_k != "all" and (not top_k.isdigit() or int(top_k) < 1):
        raise ValueError(f"Expected TOPK >= 1 or 'all' in --cache-teacher views:K[:TOPK]. Received: TOPK={top_k!r}")
    return int(views), (top_k if top_k in (None, "all") else int(top_k))


def check_views_option(text, augment):
    """Checks ``--cache-teacher views:...`` against ``--augment``; returns ``(K, top_k)``."""
    views, top_k = parse_views_option(text)
    names = parse_augment(augment)
    if not names:
        raise ValueError(f"--cache-teacher {text} stores the teacher on augmented views, but --augment is empty: "
                         "use --cache-teacher auto (one cached output per example) or give --augment.")
    refused = [n for n in names if n not in REPLAYABLE]
    if refused:
        raise ValueError(
            f"Augmentation {refused[0]!r} cannot be replayed from a seed (its keras-cv layers draw their own "
            f"random numbers), so a view store cannot hold its views. Replayable: {', '.join(REPLAYABLE)}. "
            "Drop it from --augment, or use --cache-teacher off (the teacher then runs every step)."
        )
    return views, top_k


def auto_views(cache_teacher, augment):
    """The view store ``--cache-teacher auto`` asks for: :data:`AUTO_VIEWS` when
    ``--augment`` is on and every name in it is replayable, else ``None`` (no
    augmentation: the one-output cache; ``randaugment``: the teacher every step). Whether
    the store then fits the disk is decided when its size is known
    (:mod:`kdtf.stages.view_store`)."""
    names = parse_augment(augment)
    if cache_teacher != "auto" or not names or any(n not in REPLAYABLE for n in names):
        return None
    return AUTO_VIEWS
