"""Runs .tflite files on the LiteRT of whatever machine runs it (here: aarch64 under
qemu-user). numpy and ai_edge_litert only, so it runs in the bare arm64 root.

    python run_on_arm.py WORK_DIR        # reads WORK_DIR/manifest.json, writes WORK_DIR/arm.npz and arm.json
    python run_on_arm.py --count FILE K  # 2 invocations, a getppid() mark, K invocations, a mark
"""

import json
import os
import platform
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def _run(path, x):
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    outputs = []
    for example in x:
        value = example[None]
        if np.issubdtype(inp["dtype"], np.integer) and scale:
            info = np.iinfo(inp["dtype"])
            value = np.clip(np.round(value / scale + zero), info.min, info.max)
        interpreter.set_tensor(inp["index"], value.astype(inp["dtype"]))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"]).astype(np.float32)
        o_scale, o_zero = out["quantization"]
        outputs.append((y - o_zero) * o_scale if o_scale else y)
    nodes = [d["op_name"] for d in interpreter._get_ops_details()]
    return np.concatenate(outputs), interpreter, nodes


def main(work):
    with open(os.path.join(work, "manifest.json")) as f:
        manifest = json.load(f)
    inputs = np.load(os.path.join(work, "inputs.npz"))
    outputs, info, interpreters = {}, {"machine": platform.machine()}, {}
    for name, entry in manifest["files"].items():
        start = time.perf_counter()
        outputs[name], interpreters[name], nodes = _run(os.path.join(work, entry["file"]), inputs[entry["inputs"]])
        info[name] = {"delegate_nodes": nodes.count("DELEGATE"), "nodes": len(nodes),
                      "run_s": time.perf_counter() - start}
        print(f"{name}: {len(outputs[name])} outputs", flush=True)
    # emulated time per batch-1 invocation, every file in turns (not a latency: qemu time)
    times = {name: [] for name in interpreters}
    for _ in range(manifest.get("rounds", 5)):
        for name, interpreter in interpreters.items():
            for _ in range(manifest.get("runs_per_round", 4)):
                start = time.perf_counter()
                interpreter.invoke()
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        info[name]["emulated_ms"] = float(np.median(values) * 1e3)
    np.savez(os.path.join(work, "arm.npz"), **outputs)
    with open(os.path.join(work, "arm.json"), "w") as f:
        json.dump(info, f, indent=2)
    print(json.dumps(info))


def count(path, invocations):
    """Loads ``path``, invokes it twice (XNNPACK packs weights on the first), then
    ``invocations`` times between two ``getppid()`` system calls: the marks at which the
    instruction-counting plugin (``insn_count.c``) notes its count."""
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], np.zeros(inp["shape"], dtype=inp["dtype"]))
    for _ in range(2):
        interpreter.invoke()
    os.getppid()
    for _ in range(invocations):
        interpreter.invoke()
    os.getppid()


if __name__ == "__main__":
    if sys.argv[1] == "--count":
        sys.exit(count(sys.argv[2], int(sys.argv[3])))
    sys.exit(main(sys.argv[1]))
