"""How much one example weighs in a split's accuracy, and the warning for splits so small
that one example moves accuracy by more than a point (pure Python).

A 24-image test split makes one image 4.2 points: "teacher 91.7 %, scratch 95.8 %" is one
image, not a finding. A run says so once, names the fix, and records it in
``report.json`` (``data.small_splits``); the result table carries the split sizes.
"""

__all__ = ["SMALL_SPLIT", "points_per_example", "small_splits", "small_split_warning", "split_sizes_line"]

SMALL_SPLIT = 100  # examples: below it, one example is more than a point of accuracy


def points_per_example(count):
    """Accuracy points (percent) one example of a ``count``-example split is worth."""
    if count <= 0:
        raise ValueError(f"Expected a split of at least 1 example. Received: count={count}")
    return 100.0 / count


def small_splits(sizes, threshold=SMALL_SPLIT):
    """The evaluation splits of ``sizes`` (``{"val": n, "test": n, ...}``; ``train`` is
    never one) with fewer than ``threshold`` examples: ``[{"split", "examples",
    "points_per_example"}]``, test first."""
    return [{"split": split, "examples": int(sizes[split]), "points_per_example": round(points_per_example(sizes[split]), 2)}
            for split in ("test", "val") if 0 < sizes.get(split, 0) < threshold]


def small_split_warning(splits, fractions=None):
    """One line for the splits of :func:`small_splits` (``None`` when there are none),
    naming each split, its size, the points one example is worth, and the fix.

    Args:
        splits: :func:`small_splits` records.
        fractions: ``{"val": f, "test": f}``, the run's ``--val-fraction`` and
            ``--test-fraction``, named in the fix.
    """
    if not splits:
        return None
    named = "; ".join(f"{_NAMES[s['split']]}: {s['examples']} examples, {s['points_per_example']:.2f} points of accuracy per example"
                      for s in splits)
    flags = " / ".join(f"--{s['split']}-fraction" for s in splits)
    now = f" (now {' / '.join(str(fractions[s['split']]) for s in splits)})" if fractions else ""
    return (f"warning: small evaluation split{'s' if len(splits) > 1 else ''} ({named}): differences of a few points between "
            f"stages may be one or two examples. Fix: more images ({SMALL_SPLIT} in a split makes one example at most a "
            f"point), or a larger {flags}{now} where kdtf draws the split from your images.")


def split_sizes_line(sizes):
    """``splits: 192 train / 24 val / 24 test examples (one test example = 4.17 points)``."""
    text = f"splits: {sizes['train']} train / {sizes['val']} val / {sizes['test']} test examples"
    return text + (f" (one test example = {points_per_example(sizes['test']):.2f} points)" if sizes.get("test") else "")


_NAMES = {"test": "test", "val": "validation"}
