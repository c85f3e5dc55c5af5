#!/usr/bin/env python
"""Entropy-coded size against gzip for int8, pruned and clustered students.

    python benchmarks/entropy_size.py                 # seeds 0 1 2
    python benchmarks/entropy_size.py --seeds 0

Per seed, on the bundled MNIST digits (mnist5k) with the default run's student
(``student_cnn``, about 26.7k parameters), each model built with kdtf's compress verbs
and fine-tuned by cross-entropy (Adam 1e-3):

* ``plain``: trained ``--epochs``;
* ``pruned``: ``prune`` to 75 % (the default ``--sparsity``, layers of >= 1000 weights as
  the default ``--prune-min-weights``), ``--finetune-epochs``, ``strip_pruning``;
* ``clustered``: ``cluster`` to 16 values per kernel (layers of >= 1000 weights),
  fine-tuned, ``strip_clustering``;
* ``pruned+clustered``: the pruned model clustered with ``preserve_sparsity``.

Each is exported to full-integer int8 (calibrated on 500 training images) and to float32,
and measured: the file, its gzip (level 9), the file with its weight tensors entropy-coded
(``kdtf.export.entropy_coded_size``: a range coder per tensor under its own histogram,
header included; the rest of the file counted raw) and at the Shannon bound; the same
for the weight tensors alone (gzip of their bytes concatenated, coded, bound); test
accuracy on LiteRT. Prints a Markdown
table (mean +- std over seeds) and writes it with the raw numbers to ``--out``.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def models(seed, args):
    """``{name: keras model}`` for one seed, and the data."""
    from kdtf import compress, keras
    from kdtf.data import load
    from kdtf.models import build

    data = load("mnist5k", seed=seed)
    x, y = data.x_train, data.y_train
    steps = int(np.ceil(len(x) / 64))

    def train(model, epochs, callbacks=()):
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, shuffle=True, callbacks=list(callbacks))
        return model

    keras.utils.set_random_seed(seed)
    plain = train(build("student_cnn", data.input_shape, data.num_classes), args.epochs)
    pruned = compress.prune(compress.clone_with_weights(plain), 0.75, end_step=steps * args.finetune_epochs, frequency=steps // 2,
                            min_weights=1000)
    pruned = compress.strip_pruning(train(pruned, args.finetune_epochs, compress.pruning_callbacks()))
    clustered = compress.cluster(compress.clone_with_weights(plain), 16, min_weights=1000)
    clustered = compress.strip_clustering(train(clustered, args.finetune_epochs))
    both = compress.cluster(compress.clone_with_weights(pruned), 16, preserve_sparsity=True, min_weights=1000)
    both = compress.strip_clustering(train(both, args.finetune_epochs))
    return {"plain": plain, "pruned": pruned, "clustered": clustered, "pruned+clustered": both}, data


def measure(flatbuffer, data):
    from kdtf import export
    from kdtf.io import gzip_size

    sizes = export.entropy_coded_size(flatbuffer)
    weights = b"".join(values.tobytes() for values, _ in export.weight_tensors(flatbuffer).values())
    return {
        "file_bytes": sizes["file_bytes"],
        "gzip_bytes": gzip_size(flatbuffer),
        "entropy_coded_bytes": sizes["coded_file_bytes"],
        "entropy_bound_bytes": sizes["file_bytes"] - sizes["weights_raw_bytes"] + sizes["weights_entropy_bound_bytes"],
        "weights_raw_bytes": sizes["weights_raw_bytes"],
        "weights_gzip_bytes": gzip_size(weights),
        "weights_coded_bytes": sizes["weights_coded_bytes"],
        "weights_bound_bytes": sizes["weights_entropy_bound_bytes"],
        "accuracy": export.evaluate(flatbuffer, data.x_test, data.y_test)["accuracy"],
    }


def one_seed(seed, args):
    from kdtf import export

    built, data = models(seed, args)
    calibration = data.sample("train", 500, seed=seed)[0]
    results = {}
    for name, model in built.items():
        for mode in ("int8", "float32"):
            flatbuffer = export.to_tflite(model, mode, representative_data=calibration if mode == "int8" else None)
            results[f"{name} {mode}"] = measure(flatbuffer, data)
            print(f"seed {seed} {name} {mode}: {results[f'{name} {mode}']}", flush=True)
    return results


def table(raw):
    def cell(key, field, scale=1 / 1024, digits=1):
        values = np.array([r[key][field] for r in raw]) * scale
        return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"

    rows = ["| model | test acc. (%) | file (KB) | gzip -9 (KB) | entropy-coded (KB) | Shannon bound (KB) | "
            "weights raw (KB) | weights gzip -9 (KB) | weights coded (KB) | weights bound (KB) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for key in raw[0]:
        rows.append(
            f"| {key} | {cell(key, 'accuracy', 100, 2)} | {cell(key, 'file_bytes')} | {cell(key, 'gzip_bytes')} | "
            f"{cell(key, 'entropy_coded_bytes')} | {cell(key, 'entropy_bound_bytes')} | {cell(key, 'weights_raw_bytes')} | "
            f"{cell(key, 'weights_gzip_bytes')} | {cell(key, 'weights_coded_bytes')} | {cell(key, 'weights_bound_bytes')} |"
        )
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--out", default=os.path.join("benchmarks", "results", "entropy_size"))
    args = parser.parse_args()
    started = time.time()
    raw = [one_seed(seed, args) for seed in args.seeds]
    text = table(raw)
    settings = (f"student_cnn on mnist5k, seeds {args.seeds}, {args.epochs} epochs, fine-tuning {args.finetune_epochs} epochs per "
                f"step, {time.time() - started:.0f} s on {os.cpu_count()} CPUs")
    print(text + "\n\n" + settings)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text + "\n\n" + settings + "\n")
    with open(os.path.join(args.out, "raw.json"), "w") as f:
        json.dump({"settings": vars(args), "seeds": raw}, f, indent=1)


if __name__ == "__main__":
    main()
