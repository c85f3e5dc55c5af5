#!/usr/bin/env python
"""Linear-probe and k-NN accuracy of the five encoders of scripts/byol.py, over seeds.

    python benchmarks/byol_encoders.py                  # seeds 0 1 2, default settings
    python benchmarks/byol_encoders.py --seeds 0 1 2 3 -- --pretrain-epochs 40

Each seed is one `scripts/byol.py` run at its default settings (plus anything after
`--`), in its own process, timed from outside (wall clock including start-up). Writes
``benchmarks/results/byol/byol.{json,md}`` and keeps each run's report.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "results", "byol"))
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from kdtf.io import write_text

    runs = []
    for seed in args.seeds:
        out = os.path.join(args.output, f"seed{seed}")
        start = time.time()
        done = subprocess.run(
            [sys.executable, os.path.join(ROOT, "scripts", "byol.py"), "--seed", str(seed), "--output", out, "--verbose", "0", *extra],
            capture_output=True, text=True, cwd=ROOT,
        )
        if done.returncode:
            sys.stderr.write(done.stderr[-3000:])
            return 1
        report = json.load(open(os.path.join(out, "report.json")))
        runs.append({"seed": seed, "wall_s": time.time() - start, "report": report})
        print(f"seed {seed}: {time.time() - start:.0f} s", flush=True)
    names = [e["encoder"] for e in runs[0]["report"]["encoders"]]
    rows = []
    for name in names:
        values = {k: [100 * next(e[k] for e in r["report"]["encoders"] if e["encoder"] == name) for r in runs] for k in ("linear_probe", "knn")}
        rows.append({"encoder": name, **{f"{k}_mean": float(np.mean(v)) for k, v in values.items()},
                     **{f"{k}_std": float(np.std(v)) for k, v in values.items()}, "values": values})
    config = runs[0]["report"]["config"]
    lines = [
        f"Test accuracy (%), mean ± std over {len(runs)} seeds ({', '.join(map(str, args.seeds))}); "
        f"{config['labels_per_class']} labels per class for the probe and k-NN (k = {config['knn_k']}); "
        f"BYOL {config['pretrain_epochs']} epochs (teacher) / {config['student_pretrain_epochs']} (student); "
        f"distillation {config['distill_epochs']} epochs; prune {config['sparsity']:.0%} + QAT; 500 test images.",
        "",
        "| encoder | linear probe | k-NN |",
        "|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['encoder']} | {row['linear_probe_mean']:.2f} ± {row['linear_probe_std']:.2f} | {row['knn_mean']:.2f} ± {row['knn_std']:.2f} |")
    walls = [r["wall_s"] for r in runs]
    lines += ["", f"Wall time per run (scripts/byol.py, default settings, {os.cpu_count()} CPUs): " + ", ".join(f"{w:.0f} s" for w in walls) + "."]
    table = "\n".join(lines) + "\n"
    print(table)
    write_text(os.path.join(args.output, "byol.md"), table)
    write_text(os.path.join(args.output, "byol.json"), json.dumps({"rows": rows, "wall_s": walls, "seeds": args.seeds, "extra_args": extra}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
