#!/usr/bin/env python
"""A user's own photos at scale: input-pipeline rates and a short distillation run.

    python benchmarks/data_scale.py                  # 3,000 and 12,000 JPEGs, 64 and 224 px
    python benchmarks/data_scale.py --quick          # 200 and 800 JPEGs, 32 px: a smoke test
    python benchmarks/data_scale.py --part pipeline  # (a) only; --part distill: (b) only

Generates folders of 256 px JPEGs with PIL (``--root``, default /tmp/kdtf_data_scale;
reused when already there): ``--classes`` classes of striped, tinted, noisy images and
two corrupt files (a garbage file and a truncated JPEG). For each folder size and image
size, in a fresh process each (so peak memory is its own) and with a fresh cache folder:

  (a) the input pipeline alone: the first pass (parallel decode and resize into the
      image cache, ``kdtf.data.load(..., cache_dir=...)``), a cached epoch of
      ``Splits.dataset("train", 64, shuffle=True)`` (median of ``--epochs``), an epoch
      decoded on the fly without a cache, and the peak RSS;
  (b) ``scripts/distill.py --dataset folder:PATH --image-size N --labels 0`` with one
      epoch per stage (``--teacher``/``--student``, default student_cnn for both): peak
      RSS, seconds until the teacher starts training, training images/s (the distilled
      stage's epoch) and wall time.

Checks the targets of issue 14 (peak RSS of the largest folder within 1.15x of the
smallest; the largest at the largest image size training within 60 s and under 3 GB;
first-pass decode >= 300 images/s; cached pipeline >= 3x the training rate) and writes
``benchmarks/results/data_scale/data_scale.{json,md}``.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import re
import resource
import shutil
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _image(rng, label, classes, side=256):
    """Stripes whose angle depends on the class, a random phase, tint and noise."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    angle = np.pi * label / classes + rng.normal(0, 0.08)
    stripes = np.sin(2 * np.pi * (4 + label) * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
    tint = rng.uniform(0.4, 1.0, 3)
    image = 128 + 90 * stripes[..., None] * tint + rng.normal(0, 18, (side, side, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def generate(folder, count, classes, seed=0):
    """``count`` JPEGs in ``folder/class_k`` plus two corrupt files; reused when done."""
    from PIL import Image

    marker = os.path.join(folder, ".generated.json")
    if os.path.exists(marker):
        return folder
    rng = np.random.default_rng(seed)
    for i in range(count):
        label = i % classes
        path = os.path.join(folder, f"class_{label}", f"{i:06d}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(_image(rng, label, classes)).save(path, quality=90)
    with open(os.path.join(folder, "class_0", "corrupt_garbage.jpg"), "wb") as f:
        f.write(b"this is not an image")
    with open(os.path.join(folder, "class_0", f"{0:06d}.jpg"), "rb") as f:
        whole = f.read()
    with open(os.path.join(folder, "class_1", "corrupt_truncated.jpg"), "wb") as f:
        f.write(whole[: len(whole) // 2])
    with open(marker, "w") as f:
        json.dump({"count": count, "classes": classes, "corrupt": 2}, f)
    return folder


def _epoch_rate(ds):
    start, count = time.perf_counter(), 0
    for x, _ in ds:
        count += int(x.shape[0])
    return count / (time.perf_counter() - start)


def pipeline_worker(folder, image_size, epochs, batch_size):
    """(a) in this process: first pass into a fresh cache, cached epochs, an uncached epoch."""
    from kdtf.data import load

    cache = tempfile.mkdtemp(prefix="kdtf-data-scale-cache-")
    try:
        start = time.perf_counter()
        data = load(f"folder:{folder}", image_size=image_size, cache_dir=cache)  # decodes into the cache
        load_s = time.perf_counter() - start
        decoded = data.meta["image_cache"]["decoded"]
        ds = data.dataset("train", batch_size, shuffle=True, seed=0)
        cached = [_epoch_rate(ds) for _ in range(epochs)]
        streamed = load(f"folder:{folder}", image_size=image_size)
        uncached = _epoch_rate(streamed.dataset("train", batch_size, shuffle=True, seed=0))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "images": decoded, "skipped": data.meta["skipped"], "train": data.size("train"),
        "load_s": round(load_s, 2), "first_pass_images_per_s": round(decoded / data.meta["image_cache"]["decode_s"], 1),
        "cached_epoch_images_per_s": round(float(np.median(cached)), 1),
        "uncached_epoch_images_per_s": round(uncached, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _run_child(command, log_path):
    """Runs ``command``; returns (returncode, rusage, [(seconds, line)], wall seconds)."""
    start = time.perf_counter()
    lines = []
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                 env=dict(os.environ, PYTHONPATH=ROOT))
        for line in child.stdout:
            lines.append((time.perf_counter() - start, line.rstrip()))
            log.write(line)
        _, status, usage = os.wait4(child.pid, 0)
    return os.waitstatus_to_exitcode(status), usage, lines, time.perf_counter() - start


def _train_rate(lines, batch_size):
    """Images/s of the distilled stage's epoch from Keras's verbose=2 lines."""
    in_stage, rate = False, None
    for _, line in lines:
        if "stage distilled:" in line:
            in_stage = True
        step = re.search(r"\b(\d+)(ms|s)/step", line)
        if in_stage and rate is None and step and re.match(r"\s*\d+/\d+ - ", line):
            rate = batch_size / (float(step.group(1)) / (1000.0 if step.group(2) == "ms" else 1.0))
    return rate


def distill_run(folder, image_size, args):
    """(b): scripts/distill.py on the folder in a child process, with a fresh cache."""
    out = tempfile.mkdtemp(prefix="kdtf-data-scale-run-")
    command = [
        sys.executable, os.path.join(ROOT, "scripts", "distill.py"), "--dataset", f"folder:{folder}",
        "--image-size", str(image_size), "--labels", "0", "--teacher", args.teacher, "--student", args.student,
        "--teacher-epochs", "1", "--epochs", "1", "--prune-epochs", "1", "--qat-epochs", "1",
        "--finetune-epochs", "1", "--batch-size", str(args.batch_size), "--latency-runs", "5", "--verbose", "2",
        "--allow-weak-teacher",  # one teacher epoch measures the data path, not the teacher: the gate would stop it
        "--output", os.path.join(out, "run"), "--cache-dir", os.path.join(out, "cache"),
    ] + args.distill_args.split()
    try:
        code, usage, lines, wall = _run_child(command, os.path.join(args.output, f"distill-{os.path.basename(folder)}-{image_size}px.log"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    # the runner announces a stage just before it trains; data loading and the image cache come before
    started = next((t for t, line in lines if "stage teacher: " in line), None)
    result = {
        "returncode": code, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "wall_s": round(wall, 1),
        "training_starts_s": None if started is None else round(started, 1),
        "train_images_per_s": _train_rate(lines, args.batch_size),
    }
    if code:
        result["error"] = next((line for _, line in reversed(lines) if line.strip()), "")[:300]
    return result


def _worker_result(args, folder, image_size):
    command = [sys.executable, os.path.abspath(__file__), "--worker", f"{folder}::{image_size}",
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1][:300] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _targets(results, sizes, image_sizes):
    small, large, big_px = min(sizes), max(sizes), max(image_sizes)
    pick = lambda part, n, px: results.get(f"{n}@{px}", {}).get(part) or {}
    checks = {}
    for px in image_sizes:
        a, b = pick("distill", small, px).get("peak_rss_mb"), pick("distill", large, px).get("peak_rss_mb")
        if a and b:
            checks[f"peak RSS {large} / {small} images at {px} px <= 1.15"] = [round(b / a, 3), b / a <= 1.15]
    big = pick("distill", large, big_px)
    if big.get("training_starts_s") is not None:
        checks[f"{large} images at {big_px} px: training starts within 60 s"] = [big["training_starts_s"], big["training_starts_s"] <= 60]
        checks[f"{large} images at {big_px} px: peak RSS under 3 GB"] = [big["peak_rss_mb"], big["peak_rss_mb"] < 3 * 1024]
    for key, value in results.items():
        pipe, run = value.get("pipeline") or {}, value.get("distill") or {}
        if pipe.get("first_pass_images_per_s"):
            checks[f"{key}: first-pass decode >= 300 images/s"] = [pipe["first_pass_images_per_s"], pipe["first_pass_images_per_s"] >= 300]
        if pipe.get("cached_epoch_images_per_s") and run.get("train_images_per_s"):
            ratio = pipe["cached_epoch_images_per_s"] / run["train_images_per_s"]
            checks[f"{key}: cached pipeline >= 3x training rate"] = [round(ratio, 1), ratio >= 3]
    return checks


def _table(results, checks):
    header = ("| images @ px | first pass (img/s) | cached epoch (img/s) | uncached epoch (img/s) | pipeline RSS (MB) "
              "| run RSS (MB) | training starts (s) | training (img/s) | run wall (s) |")
    rows = [header, "|" + "---|" * 9]
    for key, value in results.items():
        p, d = value.get("pipeline") or {}, value.get("distill") or {}
        rate = d.get("train_images_per_s")
        rows.append(f"| {key} | {p.get('first_pass_images_per_s', '-')} | {p.get('cached_epoch_images_per_s', '-')} | "
                    f"{p.get('uncached_epoch_images_per_s', '-')} | {p.get('peak_rss_mb', '-')} | {d.get('peak_rss_mb', '-')} | "
                    f"{d.get('training_starts_s', '-')} | {'-' if rate is None else round(rate, 1)} | {d.get('wall_s', '-')} |")
    rows += ["", "| target | value | met |", "|---|---|---|"]
    rows += [f"| {k} | {v} | {'yes' if ok else 'NO'} |" for k, (v, ok) in checks.items()]
    return "\n".join(rows) + "\n"


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "kdtf_data_scale"), help="where generated folders live")
    parser.add_argument("--sizes", default="3000,12000", help="images per folder, comma-separated")
    parser.add_argument("--image-sizes", default="64,224", help="--image-size values, comma-separated")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3, help="cached epochs timed in (a)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--part", choices=("both", "pipeline", "distill"), default="both")
    parser.add_argument("--teacher", default="student_cnn")
    parser.add_argument("--student", default="student_cnn")
    parser.add_argument("--distill-args", default="", help="extra flags for scripts/distill.py")
    parser.add_argument("--quick", action="store_true", help="200 and 800 images at 32 px")
    parser.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "results", "data_scale"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.image_sizes, args.epochs = "200,800", "32", 2
        args.output = os.path.join(tempfile.gettempdir(), "kdtf_data_scale_quick_results")
    return args


def main(argv=None):
    args = _parse(argv)
    if args.worker:
        folder, image_size = args.worker.split("::")
        print(json.dumps(pipeline_worker(folder, int(image_size), args.epochs, args.batch_size)))
        return 0
    sizes, image_sizes = [int(s) for s in args.sizes.split(",")], [int(s) for s in args.image_sizes.split(",")]
    os.makedirs(args.output, exist_ok=True)
    results = {}
    for count in sizes:
        folder = generate(os.path.join(args.root, f"jpegs-{count}-{args.classes}c"), count, args.classes)
        for px in image_sizes:
            key = f"{count}@{px}"
            results[key] = {}
            if args.part in ("both", "pipeline"):
                results[key]["pipeline"] = _worker_result(args, folder, px)
            if args.part in ("both", "distill"):
                results[key]["distill"] = distill_run(folder, px, args)
            print(f"{key}: {json.dumps(results[key])}", flush=True)
    checks = _targets(results, sizes, image_sizes)
    table = _table(results, checks)
    print(table)
    from kdtf.io import write_text

    write_text(os.path.join(args.output, "data_scale.md"), table)
    write_text(os.path.join(args.output, "data_scale.json"), json.dumps(
        {"settings": vars(args), "results": results, "targets": checks, "cpus": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
