#!/usr/bin/env python
"""Does distillation pay with every label? Scratch vs KD, KD + logit standardization,
DIST and function matching, on mnist5k and on the cluttered 64 x 64 digits.

    python benchmarks/full_labels.py --dataset mnist5k --teacher-epochs 8 --epochs 8

The cluttered table (``benchmarks/results/full_labels/cluttered``), one process per seed,
``--resume`` adding each seed to the last (``R`` = ``--rows scratch kd kd+standardize dist
"function matching" "dist, alpha 0"``; its configuration chosen on the validation split
by ``full_labels_probe.py``), then the ``dist+at`` row (its weight chosen on the
validation split, ``--split val``, ``benchmarks/results/full_labels_val``) run in one more
process and joined to them::

    python benchmarks/full_labels.py --dataset cluttered --teacher-epochs 20 --epochs 20 --views 8 --teacher-dir /tmp/fl-cg/teachers --seeds 0 R
    python benchmarks/full_labels.py --dataset cluttered --teacher-epochs 20 --epochs 20 --views 8 --teacher-dir /tmp/fl-cg/teachers --seeds 1 R --resume
    python benchmarks/full_labels.py --dataset cluttered --teacher-epochs 20 --epochs 20 --views 8 --teacher-dir /tmp/fl-cg/teachers --seeds 2 R --resume
    python benchmarks/full_labels.py --dataset cluttered --teacher-epochs 20 --epochs 20 --views 8 --at-weight 30 --seeds 0 1 2 --rows scratch dist+at --teacher-dir /tmp/fl-cg/teachers --out /tmp/test-at30
    python benchmarks/full_labels.py --join benchmarks/results/full_labels/cluttered/raw.json /tmp/test-at30/cluttered/raw.json

(the joined scratch rows are equal: the runs are deterministic per seed).

Every label is kept. Per seed one teacher (trained on the labels, no augmentation, the
same for every row), then one view store (:class:`kdtf.data.ViewStore`): the teacher's
outputs on ``--views`` K replayable augmented views of every training image (``--augment``,
mixup by default), all classes kept, written once. Every student row then trains on
those same stored views: the same initial weights, the same pixels (one of the K views of
each image per epoch, the same draw for every row), the same epochs, optimizer (Adam 1e-3,
cosine to 0) and optimizer steps, and no teacher pass. The scratch row reads the views'
(mixed) labels only. Rows:

* ``scratch``: cross-entropy on the (mixed) labels of the stored views.
* ``kd``: ``alpha = 0.5``, ``kd`` at T = 4 (kdtf's default).
* ``kd+standardize``: the same on z-scored logits (Sun et al., CVPR 2024).
* ``dist``: ``alpha = 0.5``, ``dist`` (beta = gamma = 1) at T = 4 (Huang et al., 2022).
* ``function matching``: ``alpha = 0``, ``kd`` at T = 1 (Beyer et al., 2022): consistent
  stored views, mixup on both, no hard-label term, at the same epochs as scratch.
* ``dist, alpha 0`` (only when named in ``--rows``): ``dist`` at T = 4 without the
  hard-label term.
* ``dist+at`` (only when named; cluttered): ``dist`` plus attention transfer
  (Zagoruyko & Komodakis, 2017; weight ``--at-weight``) from the teacher's last
  BN-ReLU map (``relu6``, 8 x 8) to the student's ``conv4`` (8 x 8): where the digit is,
  which the labels do not say. Its store (same views) also keeps that map, 32 KB a view;
  the pass is counted in the row's time.

One store serves every row: it keeps ``softmax(z / 4)`` of every class, and the pseudo-
logits it hands back, ``4 log p = z - logsumexp(z / 4) * 4``, differ from the teacher's
logits by a constant per image, which no row's loss sees (softmax at any T, z-scores and
DIST's Pearson correlations are shift-invariant). Its pass is timed as its own line.

Models: on mnist5k the zoo's ``teacher_cnn`` and ``student_cnn`` (28 px). On
``cluttered`` the teacher is ``capable_teacher`` below (a BatchNormalization CNN with
global max pooling, so it finds a digit anywhere, run at 32 px behind an area resize to
keep it cheap) and the student is ``pooled_student`` (16.5k parameters: the zoo's
``student_cnn`` flattens a 16 x 16 map into a dense layer, has to learn the digit at
every position separately and stays near 23 % at 8 epochs, scratch or distilled).

Variants, each its own table: ``--teachers N`` distils an ensemble of N teachers
(averaged probabilities, members trained from seeds ``seed + 1000 i``); ``--teacher-size``
the side ``capable_teacher`` resizes to (32); ``--student-width`` multiplies
``pooled_student``'s widths; ``--split val`` scores the validation split instead of the
test split (the probes that choose a configuration); ``--join RAW...`` joins the
``raw.json`` of processes run side by side into one table, without training.

Writes ``table.md`` and ``raw.json`` under ``--out/<dataset>`` after every seed (a
stopped run keeps the seeds it finished; ``--resume`` adds seeds to them) and prints
the table. Its footnote gives the 1-minute load average read at the start of every seed
and after its store and every row (``machine_load.py``), and each seed's command line.
With ``--teacher-dir`` a seed's teacher is trained once and reused (its training time
kept with it and reported).
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine_load  # noqa: E402

ROWS = {  # name -> (temperature, alpha, terms; "{at}" is --at-weight); None: scratch
    "scratch": None,
    "kd": (4.0, 0.5, "kd"),
    "kd+standardize": (4.0, 0.5, "kd:standardize"),
    "dist": (4.0, 0.5, "dist"),
    "function matching": (1.0, 0.0, "kd"),
    "dist, alpha 0": (4.0, 0.0, "dist"),
    "dist+at": (4.0, 0.5, "dist,at:{at}@conv4/relu6"),
}


SETTINGS = {  # what must match for seeds to share a table, and the value of a raw.json written before the option
    "dataset": "mnist5k", "teacher_epochs": None, "epochs": None, "batch_size": None, "augment": None, "views": None,
    "teachers": 1, "split": "test", "student_width": 1.0, "teacher_size": 32, "at_weight": 1.0,
}


def capable_teacher(input_shape, num_classes, size=32):
    """conv-BN-ReLU 32, 32, pool, 64, 64, pool, 128, global max pooling, Dense: the max
    over positions makes it translation invariant; built at ``size`` px behind an area
    resize of the inputs."""
    from kdtf import keras

    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Resizing(size, size, interpolation="area")(inputs)
    for i, filters in enumerate((32, 32, "pool", 64, 64, "pool", 128)):
        if filters == "pool":
            x = layers.MaxPooling2D()(x)
            continue
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(layers.BatchNormalization()(x))
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(0.3)(layers.Dense(128, activation="relu")(x))
    return keras.Model(inputs, layers.Dense(num_classes, name="logits")(x), name="capable_teacher")


def pooled_student(input_shape, num_classes, width=1.0):
    """conv-ReLU 8, pool, 16, pool, 32, pool, 32, global max pooling, Dense 32, Dense:
    student_cnn's widths with one more stage and a max over positions (16.5k parameters
    at 64 x 64 x 1), so a digit anywhere on the canvas reaches the same weights.
    ``width`` multiplies every layer's width."""
    from kdtf import keras

    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((8, 16, 32, 32)):
        x = layers.Conv2D(round(filters * width), 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        if i < 3:
            x = layers.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = layers.Dense(round(32 * width), activation="relu", name="fc1")(layers.GlobalMaxPooling2D(name="max")(x))
    return keras.Model(inputs, layers.Dense(num_classes, name="logits")(x), name="pooled_student")


def _weights_digest(model):
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return f"{model.name}-{digest.hexdigest()[:16]}"


def train_teacher(data, seed, args, member=0):
    """The seed's teacher, trained on every training label without augmentation; with
    ``args.teacher_dir`` its weights are kept there and reused by a later run with the
    same dataset, seed and teacher epochs (the probe and the table share it). ``member``
    ``i > 0`` is another teacher of an ensemble: the same split and recipe, initial weights
    and batch order from seed ``seed + 1000 i``. Returns the teacher and the seconds its
    training took."""
    from kdtf import keras
    from kdtf.models import build
    from kdtf.optim import TrainingSettings, build_optimizer

    keras.utils.set_random_seed(seed + 1000 * member)
    cluttered = args.dataset == "cluttered"
    size = getattr(args, "teacher_size", 32)
    teacher = capable_teacher(data.input_shape, data.num_classes, size) if cluttered else build("teacher_cnn", data.input_shape, data.num_classes)
    name = f"{args.dataset}-seed{seed}-e{args.teacher_epochs}" + (f"-s{size}" if cluttered and size != 32 else "") + (f"-m{member}" if member else "")
    cached = args.teacher_dir and os.path.join(args.teacher_dir, name)
    if cached and os.path.exists(cached + ".h5"):
        teacher.load_weights(cached + ".h5")
        with open(cached + ".json") as f:
            return teacher, json.load(f)["seconds"]
    started = time.time()
    steps = int(np.ceil(len(data.x_train) / args.batch_size))
    teacher.compile(build_optimizer(TrainingSettings(lr_schedule="cosine"), steps, args.teacher_epochs),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(data.dataset("train", args.batch_size, shuffle=True, seed=seed + 1000 * member).repeat(), steps_per_epoch=steps,
                epochs=args.teacher_epochs, verbose=0)
    seconds = time.time() - started
    if cached:
        from kdtf.io import write_text

        os.makedirs(args.teacher_dir, exist_ok=True)
        teacher.save_weights(cached + ".tmp.h5")  # tf_keras's h5 format (a name ending .weights.h5 is Keras 3's)
        write_text(cached + ".json", json.dumps({"seconds": seconds}) + "\n")
        os.replace(cached + ".tmp.h5", cached + ".h5")
    return teacher, seconds


def ensemble(teachers):
    """One model whose outputs are ``log(mean_i softmax(z_i))``: the teachers' averaged
    probabilities as logits (Hinton et al., 2015, distil an ensemble into one model); a
    single teacher is returned as it is."""
    if len(teachers) == 1:
        return teachers[0]
    from kdtf import keras
    from kdtf._keras import tf

    layers = keras.layers
    for i, teacher in enumerate(teachers):
        teacher._name = f"{teacher.name}_{i}"  # layer names must be unique in the ensemble
    inputs = keras.Input(teachers[0].input_shape[1:])
    probabilities = layers.Average()([layers.Softmax()(t(inputs, training=False)) for t in teachers])
    logits = layers.Lambda(lambda p: tf.math.log(p + 1e-12), name="log")(probabilities)
    return keras.Model(inputs, logits, name=f"ensemble_of_{len(teachers)}")


def train_teachers(data, seed, args):
    """``args.teachers`` teachers (:func:`train_teacher`) and their :func:`ensemble`;
    returns it and the seconds their training took, summed."""
    trained = [train_teacher(data, seed, args, member) for member in range(args.teachers)]
    return ensemble([t for t, _ in trained]), sum(s for _, s in trained)


def build_store(data, teacher, seed, args, views):
    """The seed's :class:`kdtf.data.ViewStore`: ``views`` augmented views of every
    training image and the teacher's ``softmax(z / 4)`` over all classes on each."""
    from kdtf._keras import tf
    from kdtf.data import ViewStore

    logits = tf.function(lambda x: [teacher(x, training=False)])
    return ViewStore(data, args.augment, logits, _weights_digest(teacher), views=views, top_k="all", temperature=4.0,
                     seed=seed, path=os.path.join(args.store_dir, f"{args.dataset}-seed{seed}-v{views}")).build()


def tapped_store(distiller, data, seed, args):
    """The store of ``distiller``'s teacher with the layers its feature terms tap: the same
    policy, seed and K as :func:`build_store`, so the same views (its pass is counted in
    the row's time; :func:`train_student` removes it after the row)."""
    from kdtf.data import ViewStore

    path = os.path.join(args.store_dir, f"{args.dataset}-seed{seed}-v{args.views}-tapped")
    shutil.rmtree(path, ignore_errors=True)
    return ViewStore.for_distiller(distiller, data, args.augment, views=args.views, top_k="all", seed=seed, path=path).build()


def train_student(row, data, teacher, store, seed, args):
    """One student row: ``row`` is None (scratch: cross-entropy on the stored views'
    labels) or ``(temperature, alpha, terms)`` for the Distiller; the same initial
    weights, view order and optimizer steps for every row of a seed."""
    from kdtf import Distiller, keras
    from kdtf.models import build
    from kdtf.optim import TrainingSettings, build_optimizer

    steps = int(np.ceil(len(data.x_train) / args.batch_size))
    keras.utils.set_random_seed(seed + 1)  # the same initial student for every row
    cluttered = args.dataset == "cluttered"
    student = pooled_student(data.input_shape, data.num_classes, getattr(args, "student_width", 1.0)) if cluttered else build("student_cnn", data.input_shape, data.num_classes)
    optimizer = build_optimizer(TrainingSettings(lr_schedule="cosine"), steps, args.epochs)
    distiller, tapped = None, None
    if row is not None:
        temperature, alpha, terms = row
        distiller = Distiller(student, teacher, temperature=temperature, alpha=alpha, distill=terms.format(at=args.at_weight))
        if "@" in terms:  # a feature term: its own store of the same views, with the tapped teacher layer
            store = tapped = tapped_store(distiller, data, seed, args)
    views = store.dataset(args.batch_size, seed=seed)  # the same order and views for every row
    if row is None:
        mixed = store.policy.mixes
        loss = keras.losses.CategoricalCrossentropy(from_logits=True) if mixed else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        student.compile(optimizer, loss)
        student.fit(views.map(lambda inputs, y: (inputs["x"], y)), steps_per_epoch=steps, epochs=args.epochs, verbose=0)
    else:
        distiller.compile(optimizer)
        distiller.fit(views, steps_per_epoch=steps, epochs=args.epochs, verbose=0)
    if tapped is not None:
        shutil.rmtree(tapped.path, ignore_errors=True)
    return student


def scored_split(data, split):
    """``(x, y)`` of the split a table scores: ``"test"`` or ``"val"``."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    return (data.x_test, data.y_test) if split == "test" else (data.x_val, data.y_val)


def accuracy(model, data, split="test"):
    x, y = scored_split(data, split)
    return float(np.mean(model.predict(x, batch_size=256, verbose=0).argmax(-1) == y))


def one_seed(seed, args):
    from kdtf.data import load

    data = load(args.dataset, seed=seed)
    out, timing = {"seed": seed, "train": len(data.x_train), "test": len(scored_split(data, args.split)[1]), "views": args.views}, {}
    out["load"] = [machine_load.read()]
    out["command"] = "python benchmarks/full_labels.py " + " ".join(f'"{a}"' if " " in a else a for a in sys.argv[1:])
    teacher, timing["teacher"] = train_teachers(data, seed, args)  # their training time, also when reused
    out["teacher"] = accuracy(teacher, data, args.split)
    print(f"seed {seed} teacher: {out['teacher']:.4f} ({timing['teacher']:.0f} s)", file=sys.stderr, flush=True)

    started = time.time()
    store = build_store(data, teacher, seed, args, args.views)
    timing["store"] = time.time() - started
    out["load"].append(machine_load.read())
    print(f"seed {seed} view store: {store.describe()}", file=sys.stderr, flush=True)
    for name in args.rows:
        started = time.time()
        student = train_student(ROWS[name], data, teacher, store, seed, args)
        out[name], timing[name] = accuracy(student, data, args.split), time.time() - started
        out["load"].append(machine_load.read())
        print(f"seed {seed} {name}: {out[name]:.4f} ({timing[name]:.0f} s)", file=sys.stderr, flush=True)
    shutil.rmtree(store.path, ignore_errors=True)
    out["seconds"] = timing
    return out


def _changed(earlier, args, with_at):
    """The :data:`SETTINGS` in which an earlier ``raw.json`` differs from ``args`` (a
    dict); the attention weight only when both have the ``dist+at`` row."""
    with_at = with_at and any("dist+at" in run for run in earlier["runs"])
    return [k for k, default in SETTINGS.items()
            if (k != "at_weight" or with_at) and earlier["args"].get(k, default) != args.get(k, default)]


def _commands(run):
    return run.get("commands", [run["command"]] if "command" in run else [])


def join(paths, out, args):
    """The seeds and rows of several ``raw.json`` files (processes run side by side, one
    seed or row each) joined into one table under ``out/<dataset>``: rows of the same seed are
    merged, a row measured twice keeps the first file's value."""
    from kdtf.io import write_text

    merged, first = {}, None
    for path in paths:
        with open(path) as f:
            earlier = json.load(f)
        first = first or earlier["args"]
        changed = _changed(earlier, first, any("dist+at" in run for run in merged.values()))
        if changed:
            raise SystemExit(f"--join: {path} was run with other settings than {paths[0]} ({', '.join(changed)})")
        if any("dist+at" in run for run in earlier["runs"]):
            first = dict(first, at_weight=earlier["args"].get("at_weight", SETTINGS["at_weight"]))
        for run in earlier["runs"]:
            into = merged.setdefault(run["seed"], {"seconds": {}, "load": [], "commands": []})
            into.update({k: v for k, v in run.items() if k not in into and k not in ("command", "commands")})
            into["seconds"].update({k: v for k, v in run["seconds"].items() if k not in into["seconds"]})
            into["load"] += run.get("load", [])
            into["commands"] += [c for c in _commands(run) if c not in into["commands"]]
    runs = [merged[seed] for seed in sorted(merged)]
    for k, v in first.items():
        setattr(args, k, v)
    args.rows = [name for name in ROWS if all(name in run for run in runs)]
    out = os.path.join(out, first.get("dataset", SETTINGS["dataset"]))
    os.makedirs(out, exist_ok=True)
    text = table(runs, args)
    write_text(os.path.join(out, "table.md"), text)
    write_text(os.path.join(out, "raw.json"), json.dumps({"args": first, "runs": runs}, indent=2) + "\n")
    return text


def variant(args):
    """The settings that differ from the table's defaults, as a sentence (or "")."""
    said = []
    if args.teacher_size != SETTINGS["teacher_size"]:
        said.append(f"capable_teacher at {args.teacher_size} px")
    if args.teachers != SETTINGS["teachers"]:
        said.append(f"an ensemble of {args.teachers} teachers")
    if args.student_width != SETTINGS["student_width"]:
        said.append(f"pooled_student {args.student_width:g} x as wide")
    if "dist+at" in args.rows:
        said.append(f"dist+at: attention-transfer weight {args.at_weight:g}, its time includes the pass "
                    "of its own store (the same views with the teacher's relu6 map)")
    return ("Variant: " + ", ".join(said) + ". ") if said else ""


def teacher_name(args):
    return "teacher" if args.teachers == 1 else f"teacher (ensemble of {args.teachers})"


def table(runs, args):
    def cell(values):
        return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}"

    scratch = np.array([r["scratch"] for r in runs]) if "scratch" in runs[0] else None
    teacher = np.array([r["teacher"] for r in runs])
    what = "test" if args.split == "test" else "validation"
    lines = [f"| row | {what} accuracy (%) | minus scratch (points) | teacher - scratch gap closed | epochs | wall time per seed (s) |",
             "|---|---|---|---|---|---|",
             f"| {teacher_name(args)} | {cell(teacher)} | — | — | {args.teacher_epochs} | {np.mean([r['seconds']['teacher'] for r in runs]):.0f} |",
             f"| view store ({args.views} views, teacher pass) | — | — | — | — | {np.mean([r['seconds']['store'] for r in runs]):.0f} |"]
    for name in args.rows:
        values = np.array([r[name] for r in runs])
        gain = closed = "—"
        if scratch is not None and name != "scratch":
            gain = f"{100 * np.mean(values - scratch):+.2f} ± {100 * np.std(values - scratch):.2f}"
            gap = np.mean(teacher - scratch)
            closed = f"{100 * np.mean(values - scratch) / gap:.0f} %" if gap > 0 else "no gap"
        lines.append(f"| {name} | {cell(values)} | {gain} | {closed} | {args.epochs} | {np.mean([r['seconds'][name] for r in runs]):.0f} |")
    return "\n".join(lines) + (
        f"\n\n{args.dataset}, every label ({runs[0]['train']} training images), {runs[0]['test']} {what} images; mean ± std over "
        f"{len(runs)} seed(s) ({', '.join(str(r['seed']) for r in runs)}). Every student row: the same initial weights, "
        f"augmentation `{args.augment}` (scratch too) replayed from the same {args.views} stored views per image, "
        f"{args.epochs} epochs of {-(-runs[0]['train'] // args.batch_size)} steps, Adam 1e-3 cosine, no teacher pass while training "
        "(the store's pass is its own line). " + variant(args) + machine_load.describe([v for r in runs for v in r.get("load", [])]) + "\n"
        + "".join(f"\n* `{c}`" for c in dict.fromkeys(c for r in runs for c in _commands(r))) + "\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "cluttered"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=list(ROWS)[:5], choices=list(ROWS))
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--teachers", type=int, default=1, help="an ensemble of N teachers (averaged probabilities)")
    parser.add_argument("--teacher-size", type=int, default=32, help="cluttered: the side capable_teacher resizes its inputs to")
    parser.add_argument("--student-width", type=float, default=1.0, help="cluttered: pooled_student's width multiplier")
    parser.add_argument("--at-weight", type=float, default=1.0, help="the attention-transfer weight of the dist+at row")
    parser.add_argument("--split", default="test", choices=["test", "val"], help="score on the test split or the validation split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--augment", default="mixup", help="a replayable view policy (kdtf.data.views)")
    parser.add_argument("--views", type=int, default=8, help="K stored views per training image")
    parser.add_argument("--store-dir", default=None, help="where the view stores are written (default: a temporary folder)")
    parser.add_argument("--teacher-dir", default=None, help="keep each seed's teacher weights here and reuse them")
    parser.add_argument("--resume", action="store_true", help="keep the seeds of an earlier raw.json with the same settings")
    parser.add_argument("--out", default="benchmarks/results/full_labels")
    parser.add_argument("--join", nargs="+", metavar="RAW", help="no training: join these raw.json files into one table under --out")
    args = parser.parse_args(argv)
    if args.teachers < 1 or args.teacher_size < 8 or args.student_width <= 0:
        parser.error(f"--teachers must be >= 1, --teacher-size >= 8 and --student-width > 0; received {args.teachers}, "
                     f"{args.teacher_size} and {args.student_width}")
    if args.join:
        print(join(args.join, args.out, args))
        return 0

    from kdtf.io import write_text

    out = os.path.join(args.out, args.dataset)
    os.makedirs(out, exist_ok=True)
    runs, raw = [], os.path.join(out, "raw.json")
    if args.resume and os.path.exists(raw):
        with open(raw) as f:
            earlier = json.load(f)
        changed = _changed(earlier, vars(args), "dist+at" in args.rows)
        if changed:
            raise SystemExit(f"--resume: {raw} was run with other settings ({', '.join(changed)}); drop --resume or match them")
        runs = [r for r in earlier["runs"] if r["seed"] not in args.seeds]
        args.rows = [r for r in args.rows if all(r in run for run in runs)]
    temporary = args.store_dir is None
    args.store_dir = args.store_dir or tempfile.mkdtemp(prefix="full-labels-")
    for seed in args.seeds:
        runs = sorted(runs + [one_seed(seed, args)], key=lambda r: r["seed"])
        text = table(runs, args)
        write_text(os.path.join(out, "table.md"), text)
        write_text(raw, json.dumps({"args": {k: v for k, v in vars(args).items() if k != "store_dir"}, "runs": runs}, indent=2) + "\n")
    if temporary:
        shutil.rmtree(args.store_dir, ignore_errors=True)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
