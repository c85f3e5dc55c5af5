#!/usr/bin/env python
"""The default models on a small photo folder, and the teacher stage's memory at 224 px.

    python benchmarks/photo_defaults.py                       # accuracy, seeds 0 1 2; memory
    python benchmarks/photo_defaults.py --part accuracy --seeds 0
    python benchmarks/photo_defaults.py --part memory --memory-images 12000

(a) **accuracy**: a generated folder of photo-like 128 px JPEGs (``--classes`` textures:
stripes, checks, dots, rings, each in two random colours at a random scale, angle and
phase, in a random ellipse on a random gradient, with clutter lines, blur and noise;
deterministic for the seed), ``--train-images`` in ``train/`` (the user's small folder:
kdtf splits a tenth off for validation) and ``--test-images`` in ``test/`` (a large test
split, so that one image is a fraction of a point). For each seed and each pair of
models, the run of ``scripts/distill.py --dataset folder:PATH`` with its defaults (96 px;
the teacher's photo defaults of :mod:`kdtf.teacher_defaults`, flip,crop augmentation and
at least 480 optimizer steps, for a teacher trained from scratch; students 20 epochs
without augmentation; Adam 1e-3, batch 64, T = 4, alpha = 0.5, every label) up to the
distilled student (``kdtf.pipeline.run`` with the teacher,
scratch, teacher-output and distilled stages; no compression or export). Pairs: the old
defaults ``teacher_cnn -> student_cnn``, the new ``photo_teacher -> photo_student``, and
``photo_teacher -> student_cnn``. ``--allow-weak-teacher``/``--allow-collapse`` are on so
every number is recorded.

(b) **memory**: the teacher stage alone (``kdtf.pipeline.run`` with the teacher stage only,
the same code as a run) of each teacher at 224 px on a folder of ``--memory-images``
generated 256 px JPEGs, in a fresh process each, one epoch cut to ``--memory-steps``
optimizer steps of batch 64 (the whole folder is decoded into the image cache first and
the data are streamed, so the peak does not grow with the number of images: see
``benchmarks/data_scale.py``), then evaluated on the validation and test splits in
batches of 64 as a run does (``--memory-fraction`` of the images each, 1 %: the
evaluation's memory is that of one batch, its time that of every image). Peak RSS from
``getrusage`` of the child.

The 1-minute load average is sampled every 30 s during each part (``os.getloadavg``).
Writes ``benchmarks/results/photo_defaults/photo_defaults.{json,md}``.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("stripes", "checks", "dots", "rings")
PAIRS = (("photo_teacher", "photo_student"), ("teacher_cnn", "student_cnn"), ("photo_teacher", "student_cnn"))


def _texture(kind, rng, side):
    """A ``side`` x ``side`` pattern in [0, 1] of ``kind``, at a random scale, angle and phase."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.07, 0.14)  # cycles per pixel at 128 px
    u = xx * np.cos(angle) + yy * np.sin(angle) + rng.uniform(0, 100)
    v = -xx * np.sin(angle) + yy * np.cos(angle) + rng.uniform(0, 100)
    wave = lambda t: np.sin(2 * np.pi * freq * t)  # noqa: E731
    if kind == "stripes":
        return (wave(u) > 0).astype(np.float64)
    if kind == "checks":
        return (wave(u) * wave(v) > 0).astype(np.float64)
    if kind == "dots":
        return (np.minimum(wave(u), wave(v)) > 0.55).astype(np.float64)
    if kind == "rings":
        cx, cy = rng.uniform(0, side, 2)
        return (wave(np.hypot(xx - cx, yy - cy)) > 0).astype(np.float64)
    raise ValueError(f"Unknown texture {kind!r}")


def photo(rng, label, classes, side=128):
    """One photo-like image of class ``label``: a patch of its texture (two random
    colours, random scale, angle and phase) in a random ellipse covering about a third
    of the image, on a random gradient with clutter lines, blurred and noisy. uint8 HxWx3."""
    from PIL import Image, ImageDraw, ImageFilter

    yy, xx = np.mgrid[0:side, 0:side] / side
    start, end, angle = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3), rng.uniform(0, 2 * np.pi)
    ramp = xx * np.cos(angle) + yy * np.sin(angle)
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    pixels = start + (end - start) * ramp[..., None]
    mask = Image.new("L", (side, side))
    rx, ry = side * rng.uniform(0.22, 0.36, 2)
    cx, cy = rng.uniform(rx, side - rx), rng.uniform(ry, side - ry)
    ImageDraw.Draw(mask).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    mask = (np.asarray(mask) > 0)[..., None]
    light = rng.uniform(60, 255, 3)
    dark = light * rng.uniform(0.1, 0.6)
    texture = _texture(classes[label], rng, side)[..., None]
    pixels = np.where(mask, dark + (light - dark) * texture, pixels)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 7)):  # clutter lines, over the patch too
        colour = tuple(int(c) for c in rng.uniform(0, 255, 3))
        draw.line([tuple(rng.uniform(0, side, 2)), tuple(rng.uniform(0, side, 2))], fill=colour, width=int(rng.integers(1, 4)))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.0)))
    pixels = np.asarray(image).astype(np.float32) + rng.normal(0, rng.uniform(5, 20), (side, side, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def generate(folder, splits, classes, seed=0, side=128):
    """``{split: count}`` JPEGs in ``folder/<split>/<class>/`` (``split`` "" for a flat
    folder), classes in turn; reused when ``folder`` holds the same request."""
    from PIL import Image

    request = {"splits": splits, "classes": list(classes), "seed": seed, "side": side}
    marker = os.path.join(folder, ".generated.json")
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f) == request:
                return folder
        shutil.rmtree(folder)
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        for i in range(count):
            label = i % len(classes)
            path = os.path.join(folder, split, classes[label], f"{i:06d}.jpg")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(photo(rng, label, classes, side)).save(path, quality=90)
    with open(marker, "w") as f:
        json.dump(request, f)
    return folder


def _config(folder, **settings):
    from kdtf.config import DistillConfig

    return DistillConfig(dataset=f"folder:{folder}", latency_runs=0, verbose=0, allow_weak_teacher=True,
                         allow_collapse=True, **settings)


def accuracy_worker(folder, seed, pairs, work):
    """(a) for one seed, in this process: every pair's teacher, scratch and distilled
    test accuracy (teachers are trained once and reused from the cache)."""
    from kdtf.pipeline import run
    from kdtf.stages.students import DistilledStage, ScratchStage
    from kdtf.stages.teacher import TeacherStage
    from kdtf.stages.teacher_outputs import TeacherOutputsStage

    def stages(ctx, user_teacher):
        teacher = TeacherStage(ctx, user_teacher)
        outputs = TeacherOutputsStage(ctx, teacher)
        return [teacher, ScratchStage(ctx), outputs, DistilledStage(ctx, teacher, outputs)]

    rows = []
    for teacher, student in pairs:
        started = time.perf_counter()
        config = _config(folder, seed=seed, teacher=teacher, student=student, output=os.path.join(work, f"{teacher}-{student}-{seed}"),
                         cache_dir=os.path.join(work, f"cache-{seed}"))
        report = run(config, stages=stages)
        accuracy = {s["stage"]: s["accuracy"] for s in report["stages"]}
        params = {s["stage"]: s["params"] for s in report["stages"]}
        rows.append({"seed": seed, "pair": f"{teacher} -> {student}", **accuracy, "teacher_params": params["teacher"],
                     "student_params": params["scratch"], "split_sizes": [report["data"][k] for k in ("train", "val", "test")],
                     "teacher_reused": report["teacher_cache"]["reused"], "wall_s": round(time.perf_counter() - started, 1)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def memory_worker(folder, teacher, image_size, steps, fraction, work):
    """(b) in this process: the teacher stage alone at ``image_size``, ``steps`` steps."""
    import resource

    from kdtf.pipeline import run
    from kdtf.stages.teacher import TeacherStage

    def stages(ctx, user_teacher):
        ctx.steps = min(ctx.steps, steps)  # one epoch cut short: the peak is reached in the first steps
        return [TeacherStage(ctx, user_teacher)]

    started = time.perf_counter()
    config = _config(folder, teacher=teacher, image_size=image_size, teacher_epochs=1, output=os.path.join(work, "run"),
                     cache_dir=os.path.join(work, "cache"), val_fraction=fraction, test_fraction=fraction)
    report = run(config, stages=stages)
    return {"teacher": teacher, "image_size": image_size, "images": report["data"]["image_cache"]["decoded"],
            "splits": [report["data"][k] for k in ("train", "val", "test")], "steps": steps, "params": report["stages"][0]["params"],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "wall_s": round(time.perf_counter() - started, 1)}


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds while in a ``with`` block."""

    def __init__(self, every=30.0):
        self.every, self.samples, self._stop = every, [], threading.Event()

    def _sample(self):
        while True:
            self.samples.append(round(os.getloadavg()[0], 2))
            if self._stop.wait(self.every):
                return

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self):
        s = self.samples
        return {"min": min(s), "median": float(np.median(s)), "max": max(s), "samples": len(s)} if s else None


def _load_text(load):
    return (f"1-minute load average during the run {load['min']:.1f} to {load['max']:.1f} (median {load['median']:.1f}, "
            f"{load['samples']} samples of os.getloadavg)") if load else "load not measured"


def _child(*args):
    command = [sys.executable, os.path.abspath(__file__), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=dict(os.environ, PYTHONPATH=ROOT))
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cell(values):
    values = 100 * np.asarray(values)
    return f"{values.mean():.1f} ± {values.std():.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def accuracy_table(rows):
    lines = ["| teacher -> student | teacher params | student params | teacher (%) | scratch (%) | distilled (%) | "
             "teacher - scratch | distilled - scratch | seeds |", "|---|---|---|---|---|---|---|---|---|"]
    for pair in dict.fromkeys(r["pair"] for r in rows):
        mine = [r for r in rows if r["pair"] == pair]
        gap = [r["teacher"] - r["scratch"] for r in mine]
        gain = [r["distilled"] - r["scratch"] for r in mine]
        lines.append(f"| {pair} | {mine[0]['teacher_params']:,} | {mine[0]['student_params']:,} | "
                     f"{_cell([r['teacher'] for r in mine])} | {_cell([r['scratch'] for r in mine])} | {_cell([r['distilled'] for r in mine])} | "
                     f"{_cell(gap)} | {_cell(gain)} | {len(mine)} |")
    return "\n".join(lines)


def memory_table(rows):
    lines = ["| teacher | params | images @ px | train / val / test | steps | peak RSS (MB) | under 3 GB | wall (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['teacher']} | {r['params']:,} | {r['images']}@{r['image_size']} | {' / '.join(map(str, r['splits']))} | "
                     f"{r['steps']} | {r['peak_rss_mb']:.0f} | "
                     f"{'yes' if r['peak_rss_mb'] < 3072 else 'NO'} | {r['wall_s']:.0f} |")
    return "\n".join(lines)


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "accuracy", "memory"), default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--classes", type=int, default=4, help="1 to 4")
    parser.add_argument("--train-images", type=int, default=400)
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--pairs", nargs="+", default=[f"{t}:{s}" for t, s in PAIRS], help="TEACHER:STUDENT pairs")
    parser.add_argument("--memory-images", type=int, default=12000)
    parser.add_argument("--memory-steps", type=int, default=10)
    parser.add_argument("--memory-fraction", type=float, default=0.01, help="--val-fraction and --test-fraction of the memory run")
    parser.add_argument("--memory-teachers", nargs="+", default=["photo_teacher", "teacher_cnn"])
    parser.add_argument("--root", default="/tmp/kdtf_photo_defaults")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "photo_defaults"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse(argv)
    if args.worker:  # in a child process: print one JSON line
        kind, *rest = args.worker.split("::")
        work = tempfile.mkdtemp(prefix="kdtf-photo-defaults-")
        try:
            if kind == "accuracy":
                result = accuracy_worker(rest[0], int(rest[1]), [tuple(p.split(":")) for p in args.pairs], work)
            else:
                result = memory_worker(rest[0], rest[1], int(rest[2]), int(rest[3]), float(rest[4]), work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(result))
        return
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "photo_defaults.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    classes = KINDS[:args.classes]
    if args.part in ("all", "accuracy"):
        folder = generate(os.path.join(args.root, f"photos-{args.classes}x{args.train_images}"),
                          {"train": args.train_images, "test": args.test_images}, classes)
        results["accuracy"] = {"rows": [], "classes": list(classes), "train_images": args.train_images, "test_images": args.test_images,
                               "command": "python benchmarks/photo_defaults.py " + " ".join(argv if argv is not None else sys.argv[1:])}
        with LoadSampler() as load:
            for seed in args.seeds:  # written after each seed
                results["accuracy"]["rows"] += _child("--worker", f"accuracy::{folder}::{seed}", "--pairs", *args.pairs)
                results["accuracy"]["load"] = load.summary()
                _write(results, args.out)
    if args.part in ("all", "memory"):
        folder = generate(os.path.join(args.root, f"memory-{args.memory_images}"), {"": args.memory_images}, classes, side=256)
        kept = [r for r in results.get("memory", []) if r["teacher"] not in args.memory_teachers]  # teachers not re-run
        results["memory"] = kept
        with LoadSampler() as load:
            for teacher in args.memory_teachers:
                row = _child("--worker", f"memory::{folder}::{teacher}::224::{args.memory_steps}::{args.memory_fraction}")
                row["load"] = load.summary()
                results["memory"].append(row)
                _write(results, args.out)
    print(_write(results, args.out))


def _write(results, out):
    with open(os.path.join(out, "photo_defaults.json"), "w") as f:
        json.dump(results, f, indent=2)
    text = ["# Default models on a small photo folder", ""]
    if results.get("accuracy", {}).get("rows"):
        a = results["accuracy"]
        sizes = a["rows"][0]["split_sizes"]
        text += [f"{len(a['classes'])} classes ({', '.join(a['classes'])}), {a['train_images']} training photos ({sizes[0]} train / "
                 f"{sizes[1]} val after the split) and {sizes[2]} test photos, 96 px; test accuracy (%), mean ± std over seeds "
                 f"{sorted({r['seed'] for r in a['rows']})}.", "", accuracy_table(a["rows"]), ""]
        if a.get("command"):
            text += [f"Command: `{a['command']}`; {_load_text(a.get('load'))}; machine: 2 CPUs shared with other jobs.", ""]
    if results.get("memory"):
        text += ["Teacher stage alone at 224 px, batch 64, peak RSS of a fresh process:", "", memory_table(results["memory"]), ""]
        text += [f"{r['teacher']}: {_load_text(r['load'])}." for r in results["memory"] if r.get("load")] + [""]
    with open(os.path.join(out, "photo_defaults.md"), "w") as f:
        f.write("\n".join(text))
    return "\n".join(text)

if __name__ == "__main__":
    main()
