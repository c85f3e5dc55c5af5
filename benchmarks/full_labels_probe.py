#!/usr/bin/env python
"""Chooses the configuration of ``full_labels.py --dataset cluttered`` on the VALIDATION
split (never the test split): one seed, one teacher (the table's own, shared through
``--teacher-dir``), then scratch and DIST variants on stores of 8, 16 and 32 views, each
scored on ``data.x_val`` (10 % of the images, held out of training and of the test set).

    python benchmarks/full_labels_probe.py --seed 0 --epochs 20 --teacher-dir /tmp/fl-cg/teachers
    python benchmarks/full_labels_probe.py --seed 0 --epochs 40 --probes 4 5 0 1 --teacher-dir /tmp/fl-cg/teachers --out ...
    python benchmarks/full_labels_probe.py --seed 0 --epochs 20 --probes 7 8 9 --teacher-dir /tmp/fl-cg/teachers --out ...
    python benchmarks/full_labels_probe.py --seed 0 --epochs 20 --probes 10 11 --teacher-dir /tmp/fl-cg/teachers --out ...

Writes ``probe.json`` and ``probe.md`` under ``--out`` after every row. The four runs
above, joined, are ``benchmarks/results/full_labels/cluttered_probe/probe.md``: they chose
the table's configuration (8 views, 20 epochs, DIST at T = 4, alpha = 0.5).
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import full_labels  # noqa: E402
import machine_load  # noqa: E402

PROBES = [  # (name, views, row): row as in full_labels.ROWS
    ("scratch", 16, None),
    ("dist T4 alpha 0.5", 16, (4.0, 0.5, "dist")),
    ("dist T1 alpha 0.5", 16, (1.0, 0.5, "dist")),
    ("dist T4 alpha 0", 16, (4.0, 0.0, "dist")),
    ("scratch", 8, None),
    ("dist T4 alpha 0.5", 8, (4.0, 0.5, "dist")),
    ("dist T1 alpha 0.5", 8, (1.0, 0.5, "dist")),
    ("dist T4 alpha 0.5 beta=gamma=2", 8, (4.0, 0.5, "dist:1:beta=2:gamma=2")),
    ("dist T2 alpha 0.5", 8, (2.0, 0.5, "dist")),
    ("dist T4 alpha 0.25", 8, (4.0, 0.25, "dist")),
    ("scratch", 32, None),
    ("dist T4 alpha 0.5", 32, (4.0, 0.5, "dist")),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cluttered")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--augment", default="mixup")
    parser.add_argument("--teacher-dir", default=None)
    parser.add_argument("--probes", nargs="+", type=int, default=None, help="indices into PROBES (default all)")
    parser.add_argument("--out", default="benchmarks/results/full_labels/cluttered_probe")
    args = parser.parse_args(argv)
    args.store_dir = tempfile.mkdtemp(prefix="full-labels-probe-")
    from kdtf.data import load
    from kdtf.io import write_text

    os.makedirs(args.out, exist_ok=True)
    data = load(args.dataset, seed=args.seed)
    load_avg = [machine_load.read()]
    teacher, seconds = full_labels.train_teacher(data, args.seed, args)
    results = {"args": vars(args), "teacher": {"val": full_labels.accuracy(teacher, data, "val"), "seconds": seconds}, "rows": []}
    print(f"teacher val {results['teacher']['val']:.4f} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    stores = {}
    chosen = [PROBES[i] for i in args.probes] if args.probes else PROBES
    for name, views, row in chosen:
        if views not in stores:
            for old in stores.values():
                shutil.rmtree(old.path, ignore_errors=True)
            started = time.time()
            stores = {views: full_labels.build_store(data, teacher, args.seed, args, views)}
            print(f"store {views} views ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
        started = time.time()
        student = full_labels.train_student(row, data, teacher, stores[views], args.seed, args)
        entry = {"row": name, "views": views, "val": full_labels.accuracy(student, data, "val"), "seconds": time.time() - started}
        results["rows"].append(entry)
        load_avg.append(machine_load.read())
        results["load_average"] = load_avg
        print(entry, file=sys.stderr, flush=True)
        lines = ["| row | views | validation accuracy (%) | s |", "|---|---|---|---|",
                 f"| teacher | — | {100 * results['teacher']['val']:.2f} | {seconds:.0f} |"]
        lines += [f"| {r['row']} | {r['views']} | {100 * r['val']:.2f} | {r['seconds']:.0f} |" for r in results["rows"]]
        write_text(os.path.join(args.out, "probe.md"), "\n".join(lines) + (
            f"\n\nSeed {args.seed}, {len(data.x_val)} validation images (the test split unused), {args.epochs} epochs, "
            f"teacher {args.teacher_epochs} epochs; 1-minute load average during the probe "
            f"{min(load_avg):.1f}-{max(load_avg):.1f} on {os.cpu_count()} cores.\n"))
        write_text(os.path.join(args.out, "probe.json"), json.dumps(results, indent=2) + "\n")
    shutil.rmtree(args.store_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
