#!/usr/bin/env python
"""LiteRT latency of filter-pruned shapes, without training: which model and input size
turns a share of filters removed into speed.

    python benchmarks/filter_latency.py                 # MobileNetV2 1.0 and 0.35 at 96 and 160 px
    python benchmarks/filter_latency.py --models mobilenet_v2_035 --sizes 96 --runs 100

Int8 latency depends on the tensor shapes, not on the weights' values, so each model is
built with random weights, pruned by :func:`kdtf.compress.prune_filters` (L1, uniform)
to 25/50/75 % of its filters removed in one cut, converted to int8 (calibrated on random
inputs) and timed on LiteRT at 1 thread, every file of a model in turns
(:func:`kdtf.export.latency_side_by_side`). Accuracy is what
``benchmarks/structured_pruning.py`` measures. Writes ``--out``/table.md and raw.json.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402


def measure(model_name, size, fractions, runs, channels):
    """``{fraction: {params, macs, size_bytes, latency_ms}}`` for one model and size."""
    from kdtf import compress, export, keras
    from kdtf.export.macs import count_macs
    from kdtf.models import build

    keras.utils.set_random_seed(0)
    model = build(model_name, (size, size, channels), 10)
    calibration = np.random.default_rng(0).random((64, size, size, channels), dtype=np.float32)
    files, rows = {}, {}
    for fraction in (0.0,) + tuple(fractions):
        pruned = model if fraction == 0 else compress.prune_filters(model, fraction)[0]
        files[fraction] = export.to_tflite(pruned, "int8", representative_data=calibration)
        rows[fraction] = dict(params=int(pruned.count_params()), macs=count_macs(files[fraction])["total"],
                              size_bytes=len(files[fraction]))
    for fraction, timing in export.latency_side_by_side(files, num_threads=1, runs=runs).items():
        rows[fraction]["latency_ms"] = timing["median_ms"]
    return rows


def table(results, runs):
    lines = ["| model | input (px) | filters removed | params | MACs | size (KB) | latency 1 thread (ms) | speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    for (model_name, size), rows in results.items():
        base = rows[0.0]["latency_ms"]
        for fraction, row in rows.items():
            lines.append(f"| {model_name} | {size} | {fraction:.0%} | {row['params']:,} | {row['macs']:,} | "
                         f"{row['size_bytes'] / 1024:.1f} | {row['latency_ms']:.3f} | {base / row['latency_ms']:.2f}x |")
    return "\n".join(lines) + (f"\n\nint8 TFLite on LiteRT, random weights (latency depends on shapes only), one cut by L1 "
                               f"(uniform); median of {runs} batch-1 runs at 1 thread, each model's files timed in turns.\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "mobilenet_v2_035"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[96, 160])
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.25, 0.5, 0.75])
    parser.add_argument("--channels", type=int, default=1, help="input channels (1: the digits of the accuracy benchmark)")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/filter_latency")
    args = parser.parse_args(argv)

    from kdtf.compress.filters import check_fraction
    from kdtf.io import write_text

    for fraction in args.fractions:
        check_fraction(fraction, "--fractions")
    results = {(name, size): measure(name, size, args.fractions, args.runs, args.channels)
               for name in args.models for size in args.sizes}
    text = table(results, args.runs)
    os.makedirs(args.out, exist_ok=True)
    write_text(os.path.join(args.out, "table.md"), text)
    raw = [dict(model=name, size=size, rows={f"{fraction:g}": row for fraction, row in rows.items()})
           for (name, size), rows in results.items()]
    write_text(os.path.join(args.out, "raw.json"), json.dumps({"args": vars(args), "results": raw}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
