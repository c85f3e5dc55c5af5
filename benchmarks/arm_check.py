#!/usr/bin/env python
"""The exported models on the ARM (aarch64) build of LiteRT, under qemu user-mode emulation.

    bash benchmarks/arm/setup.sh ~/.cache/kdtf-arm          # once (apt-get, debootstrap, wheels)
    python benchmarks/arm_check.py RUN_DIR --arm-root ~/.cache/kdtf-arm

For a run folder (``scripts/distill.py``'s output): the distilled student's float32 export
and the run's ``student_int8.tflite`` on the run's test split; and a small network of
XNNPACK's sparse pattern (random weights, 1x1 convolutions pruned to ``--sparsity`` by
``compress.prune(policy="xnnpack")``), exported dense and sparse
(:func:`kdtf.export.to_sparse_tflite`). Each file runs here (x86) and on the aarch64
LiteRT; the check reports, per file: ARM accuracy, top-1 agreement with the x86 outputs,
largest output difference, XNNPACK delegate nodes, and the emulated time per batch-1
invocation (files in turns). The files of ``benchmarks/export_latency.py`` whose int8 is
slow on x86 come along (random weights, random inputs: agreement with x86 only): the ViT
student (batch 1: float32, the converter's int8, kdtf's ``xnnpack_int8``) and
MobileNetV2 0.35 at 160 px (float32, int8).

Instruction counts per inference come from a QEMU TCG plugin (``arm/insn_count.c``, built
by ``arm/setup.sh`` for Debian 12's dynamic ``qemu-aarch64``, which accepts ``-plugin``;
the static one does not): each file runs under it with 2 warm-up invocations and 3
counted ones between two marks (``getppid()`` calls the plugin notes), and the count
between the marks over 3 is one inference's guest instructions. They do not depend on the machine's load; they are not latencies (an ARM
core retires NEON and scalar instructions at different rates, caches are not modelled),
and neither is emulated time, which follows them. Not part of the test suite: it prints
one SKIP line and exits 0 where emulation cannot run, and says so where counting cannot.
Writes ``--out``/arm_check.md and arm_check.json.
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

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def emulation_problem(root):
    """``None`` when qemu, the arm64 root, the wheels and ``unshare`` are there; else why not."""
    if not shutil.which("qemu-aarch64-static"):
        return "qemu-aarch64-static not found (run benchmarks/arm/setup.sh)"
    if not os.path.exists(os.path.join(root, "rootfs", "usr", "bin", "python3.11")):
        return f"no arm64 Python under {root}/rootfs (run benchmarks/arm/setup.sh {root})"
    if not os.path.isdir(os.path.join(root, "site", "ai_edge_litert")):
        return f"no aarch64 ai_edge_litert under {root}/site (run benchmarks/arm/setup.sh {root})"
    if not shutil.which("unshare") or os.geteuid() != 0:
        return "needs root and unshare (a private mount namespace puts an ARM /proc/cpuinfo in place)"
    return None


def plugin_problem(root):
    """``None`` when the dynamic ``qemu-aarch64`` takes TCG plugins and the counting plugin
    is built (``ROOT/libinsn_count.so``); else why instructions cannot be counted."""
    if not shutil.which("qemu-aarch64"):
        return "no dynamic qemu-aarch64 (apt-get install qemu-user; Debian 12's qemu-user-static has no -plugin)"
    text = subprocess.run(["qemu-aarch64", "-h"], capture_output=True, text=True).stdout
    if "-plugin" not in text:
        return "this qemu-aarch64 has no TCG plugin option (-plugin)"
    if not os.path.exists(os.path.join(root, "libinsn_count.so")):
        return f"the counting plugin is not built ({root}/libinsn_count.so: run benchmarks/arm/setup.sh {root})"
    return None


def _in_arm_namespace(root, qemu_command):
    return ["unshare", "-m", "bash", "-c", f"mount --bind {root}/cpuinfo /proc/cpuinfo && {qemu_command}"]


def instructions_per_inference(root, work, file, timeout, invocations=3):
    """Guest instructions of one batch-1 invocation of ``work/file`` on the aarch64 LiteRT:
    the plugin's counts at the two marks around ``invocations`` invocations, their
    difference over ``invocations``."""
    script = os.path.join(HERE, "arm", "run_on_arm.py")
    out = os.path.join(work, "count.txt")
    qemu = (f"qemu-aarch64 -cpu neoverse-n1 -plugin {root}/libinsn_count.so,out={out} -L {root}/rootfs "
            f"-E PYTHONPATH={root}/site {root}/rootfs/usr/bin/python3.11 {script} --count {work}/{file} {invocations}")
    result = subprocess.run(_in_arm_namespace(root, qemu), capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"counting {file} failed ({result.returncode}): {result.stderr[-800:]}")
    with open(out) as f:
        marks = [int(v) for line in f if line.startswith("marks") for v in line.split()[1:]]
    if len(marks) < 2:
        raise RuntimeError(f"counting {file}: the plugin saw {len(marks)} getppid marks, expected 2")
    return (marks[-1] - marks[-2]) / invocations


def sparse_pattern_net(size, width):
    """A small network of XNNPACK's sparse pattern: ZeroPadding2D(1) + 3x3/2 valid conv on
    RGB, two inverted-residual blocks of 1x1 / depthwise / 1x1 convs, global pooling."""
    from kdtf import keras

    layers = keras.layers
    inputs = keras.Input((size, size, 3))
    x = layers.ZeroPadding2D(((1, 1), (1, 1)), name="pad")(inputs)
    x = layers.ReLU(name="stem_relu")(layers.Conv2D(width, 3, strides=2, padding="valid", name="stem")(x))
    for i in range(2):
        y = layers.ReLU(name=f"expand{i}_relu")(layers.Conv2D(4 * width, 1, name=f"expand{i}")(x))
        y = layers.ReLU(name=f"dw{i}_relu")(layers.DepthwiseConv2D(3, padding="same", name=f"dw{i}")(y))
        x = layers.Add(name=f"add{i}")([x, layers.Conv2D(width, 1, name=f"project{i}")(y)])
    x = layers.Conv2D(4 * width, 1, name="head")(x)
    x = layers.Flatten(name="flatten")(layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x))
    return keras.Model(inputs, layers.Dense(10, name="logits")(x), name="sparse_net")


def build_files(run_dir, work, sparsity, size, width):
    """Writes the files, the inputs and the x86 outputs into ``work``; returns the manifest."""
    from kdtf import compress, export, keras
    from kdtf.data import load
    from kdtf.report import load_report
    from kdtf.saving import load_model

    report = load_report(run_dir)
    data = load(report["config"]["dataset"], seed=report["config"]["seed"])
    student = load_model(os.path.join(run_dir, "student.keras"))
    files = {"student float32": export.to_tflite(student, "float32")}
    with open(os.path.join(run_dir, "student_int8.tflite"), "rb") as f:
        files["student int8 (the run's)"] = f.read()
    keras.utils.set_random_seed(0)
    net = sparse_pattern_net(size, width)
    rng = np.random.default_rng(0)
    x_sparse = rng.random((32, size, size, 3), dtype=np.float32)
    pruned = compress.prune(net, sparsity, schedule="constant", frequency=1, policy="xnnpack")
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x_sparse, np.arange(32) % 10, epochs=1, batch_size=16, verbose=0, callbacks=compress.pruning_callbacks())
    stripped = compress.strip_pruning(pruned)
    files["sparse-pattern net, dense float32"] = export.to_tflite(stripped, "float32")
    files["sparse-pattern net, sparse float32"] = export.to_sparse_tflite(stripped)
    extra = x86_slow_int8_files()
    files.update(extra)
    x_test = np.asarray(data.x_test, np.float32)
    random = {f"random{shape[0]}": rng.random((2,) + shape, dtype=np.float32) for shape in {s for _, s in extra.values()}}
    np.savez(os.path.join(work, "inputs.npz"), test=x_test, sparse=x_sparse, **random)
    manifest = {"files": {}, "labels": np.asarray(data.y_test).tolist(), "sparsity": sparsity, "rounds": 3, "runs_per_round": 2}
    x86 = {}
    for i, (name, flatbuffer) in enumerate(files.items()):
        file = f"model{i}.tflite"
        if isinstance(flatbuffer, tuple):  # (bytes, input shape) of a random-weight model
            flatbuffer, shape = flatbuffer
            inputs = f"random{shape[0]}"
        else:
            inputs = "sparse" if name.startswith("sparse") else "test"
        export.save_tflite(flatbuffer, os.path.join(work, file))
        manifest["files"][name] = {"file": file, "inputs": inputs, "size_bytes": len(flatbuffer),
                                   "sparse_tensors": len(export.sparse_tensors(flatbuffer))}
        x = {"sparse": x_sparse, "test": x_test}.get(inputs)
        x86[name] = export.predict(flatbuffer, random[inputs] if x is None else x, num_threads=1)
    with open(os.path.join(work, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return manifest, x86


def x86_slow_int8_files():
    """``{name: (flatbuffer, input shape)}``: the ViT student at batch 1 (float32, the
    converter's int8, ``xnnpack_int8``) and MobileNetV2 0.35 at 160 px (float32, int8),
    random weights as in ``benchmarks/export_latency.py``."""
    sys.path.insert(0, HERE)
    from export_latency import build_model

    from kdtf import export
    from kdtf.export.symmetric import xnnpack_int8

    files = {}
    for name, shape, batch in (("vit_student", (28, 28, 1), 1), ("mobilenet_v2_035 160px", (160, 160, 3), None)):
        model = build_model(name)
        calibration = np.random.default_rng(0).random((32,) + shape, dtype=np.float32)
        float32 = export.to_tflite(model, "float32", batch_size=batch)
        files[f"{name} float32"] = (float32, shape)
        files[f"{name} int8"] = (export.to_tflite(model, "int8", representative_data=calibration, batch_size=batch), shape)
        if name == "vit_student":
            files[f"{name} int8 xnnpack"] = (xnnpack_int8(float32, calibration)[0], shape)
    return files


def run_on_arm(root, work, timeout):
    """Runs ``arm/run_on_arm.py`` under qemu-aarch64 with an ARM cpuinfo in a private
    mount namespace; returns its JSON summary and outputs."""
    script = os.path.join(HERE, "arm", "run_on_arm.py")
    qemu = (f"qemu-aarch64-static -cpu neoverse-n1 -L {root}/rootfs -E PYTHONPATH={root}/site "
            f"{root}/rootfs/usr/bin/python3.11 {script} {work}")
    result = subprocess.run(_in_arm_namespace(root, qemu), capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"the aarch64 run failed ({result.returncode}): {result.stderr[-1500:]}")
    with open(os.path.join(work, "arm.json")) as f:
        info = json.load(f)
    outputs = dict(np.load(os.path.join(work, "arm.npz")))
    return info, outputs, result.stderr


def compare(manifest, x86, arm_info, arm_outputs):
    labels = np.asarray(manifest["labels"])
    labels = labels.argmax(-1) if labels.ndim > 1 else labels
    rows = {}
    for name, entry in manifest["files"].items():
        a, x = arm_outputs[name], x86[name]
        row = {"agreement_with_x86": float(np.mean(a.argmax(-1) == x.argmax(-1))),
               "max_abs_diff": float(np.max(np.abs(a - x))), **arm_info[name], **entry}
        if entry["inputs"] == "test":
            row["arm_accuracy"] = float(np.mean(a.argmax(-1) == labels))
            row["x86_accuracy"] = float(np.mean(x.argmax(-1) == labels))
        rows[name] = row
    return rows


def _percent(row, key):
    return f"{100 * row[key]:.2f} %" if key in row else "random inputs"


def _millions(row):
    return f"{row['instructions'] / 1e6:.2f}" if row.get("instructions") else "-"


def _ratio(rows, a, b, key):
    return rows[a][key] / rows[b][key] if rows.get(a, {}).get(key) and rows.get(b, {}).get(key) else None


def markdown(rows, plugin_problem_line, sparsity):
    lines = ["| file | size (KB) | sparse tensors | x86 accuracy | ARM accuracy | top-1 agreement ARM/x86 | max abs diff | "
             "XNNPACK partitions on ARM | emulated ms/inference (not a latency) | guest instructions/inference (millions; not a latency) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['size_bytes'] / 1024:.1f} | {row['sparse_tensors']} | {_percent(row, 'x86_accuracy')} | "
                     f"{_percent(row, 'arm_accuracy')} | {100 * row['agreement_with_x86']:.1f} % | {row['max_abs_diff']:.2e} | "
                     f"{row['delegate_nodes']} | {row['emulated_ms']:.2f} | {_millions(row)} |")
    dense, sparse = rows["sparse-pattern net, dense float32"], rows["sparse-pattern net, sparse float32"]
    ratio = dense["emulated_ms"] / sparse["emulated_ms"]
    engaged = "engaged" if ratio > 1.3 else "no sign of engaging"
    pairs = [("student float32", "student int8 (the run's)"),
             ("sparse-pattern net, dense float32", "sparse-pattern net, sparse float32"),
             ("vit_student float32", "vit_student int8"), ("vit_student float32", "vit_student int8 xnnpack"),
             ("mobilenet_v2_035 160px float32", "mobilenet_v2_035 160px int8")]
    lines += ["", f"XNNPACK sparse path ({sparsity:.0%} of the 1x1 convolutions' weights zero): {engaged}: the sparse file takes "
              f"{ratio:.2f}x less emulated time than the dense file of the same weights (same outputs within the max abs diff above).", ""]
    for a, b in pairs:
        emulated, counted = _ratio(rows, a, b, "emulated_ms"), _ratio(rows, a, b, "instructions")
        if emulated:
            lines.append(f"- {a} / {b.split(' ', 1)[1] if b.startswith(a.split(' ')[0]) else b}: emulated time {emulated:.2f}x"
                         + (f", guest instructions {counted:.2f}x" if counted else ""))
    lines += [
        "",
        "Instruction counts: " + (plugin_problem_line or
                                  "guest (aarch64) instructions of one batch-1 invocation, from a QEMU TCG plugin (benchmarks/arm/insn_count.c) "
                                  "under the dynamic qemu-aarch64 -cpu neoverse-n1: counted between two marks around 3 invocations "
                                  "(after 2 warm-up invocations), divided by 3. "
                                  "Independent of the machine's load; NOT latencies (an ARM core retires NEON and scalar instructions at "
                                  "different rates, and caches are not modelled), and neither is emulated time."),
        "aarch64 LiteRT under qemu-aarch64-static -cpu neoverse-n1, 1 thread, batch 1; x86 figures from this machine's LiteRT. "
        "vit_student and mobilenet_v2_035 rows: random weights (export_latency.py's models), 2 random inputs.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--arm-root", default=os.path.expanduser("~/.cache/kdtf-arm"))
    parser.add_argument("--sparsity", type=float, default=0.85)
    parser.add_argument("--size", type=int, default=64, help="input side of the sparse-pattern network")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--timeout", type=int, default=1500)
    parser.add_argument("--out", default="benchmarks/results/arm_check")
    args = parser.parse_args(argv)
    problem = emulation_problem(args.arm_root)
    if problem:
        print(f"SKIP arm_check: {problem}")
        return 0
    from kdtf.io import write_text

    counting = plugin_problem(args.arm_root)
    with tempfile.TemporaryDirectory() as work:
        manifest, x86 = build_files(args.run_dir, work, args.sparsity, args.size, args.width)
        info, outputs, log = run_on_arm(args.arm_root, work, args.timeout)
        if counting is None:
            for name, entry in manifest["files"].items():
                info[name]["instructions"] = instructions_per_inference(args.arm_root, work, entry["file"], args.timeout)
                print(f"{name}: {info[name]['instructions'] / 1e6:.2f} M instructions per inference", flush=True)
        else:
            print(f"SKIP instruction counts: {counting}")
    rows = compare(manifest, x86, info, outputs)
    text = markdown(rows, f"not measured: {counting}." if counting else None, args.sparsity)
    os.makedirs(args.out, exist_ok=True)
    write_text(os.path.join(args.out, "arm_check.md"), text)
    write_text(os.path.join(args.out, "arm_check.json"), json.dumps(
        {"args": vars(args), "machine": info.get("machine"), "rows": rows,
         "xnnpack_log": [line for line in log.splitlines() if "XNNPACK" in line or "nnpack" in line.lower()][:10]}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
