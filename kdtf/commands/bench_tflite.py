"""Size, gzip size, ops, latency and (with --data) accuracy of a .tflite on LiteRT.

    python scripts/benchmark_tflite.py saved_models/RUN/student_int8.tflite --data mnist5k
    python scripts/benchmark_tflite.py model.tflite --keras saved_models/RUN/student.keras

Latency: median and p90 over --runs batch-1 invocations after --warmup, with 1 thread and
with every core. With --keras, the Keras model is timed in the same run for a speed-up
ratio, and accuracy agreement with it is reported.
"""

import argparse
import json
import os

from kdtf.cli import ArgumentParser, exit_on_error, load_tensorflow


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, received {value}")
    return value


def benchmark(path, data=None, keras_path=None, runs=200, warmup=20, seed=0, unsafe_load=False):
    from kdtf import export
    from kdtf.io import gzip_size

    ops = export.check_builtin_ops(path)  # refuses a missing or corrupt file first
    result = {"file": path, "size_bytes": os.path.getsize(path), "ops": ops, "gzip_bytes": gzip_size(path)}
    result["weight_sparsity"] = export.weight_sparsity(path)[1]
    threads = os.cpu_count() or 1
    result["latency_1_thread"] = export.latency(path, num_threads=1, runs=runs, warmup=warmup)
    result[f"latency_{threads}_threads"] = export.latency(path, num_threads=threads, runs=runs, warmup=warmup)
    keras_model = None
    if keras_path:
        from kdtf.saving import load_model

        keras_model = load_model(keras_path, safe_mode=not unsafe_load)
        interpreter = export.load_interpreter(path)
        shape = tuple(interpreter.get_input_details()[0]["shape"][1:])
        result["keras_latency"] = export.keras_latency(keras_model, shape, runs=runs, warmup=warmup)
        result["speedup_1_thread_vs_keras"] = result["keras_latency"]["median_ms"] / result["latency_1_thread"]["median_ms"]
    if data:
        from kdtf.data import load

        splits = load(data, seed=seed)
        result["test"] = export.evaluate(path, splits.dataset("test", 256), keras_model=keras_model)
    return result


@exit_on_error
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help=".tflite file")
    parser.add_argument("--data", help="data set spec whose test split to evaluate (e.g. mnist5k)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (as used in training)")
    parser.add_argument("--keras", help=".keras (or QAT .h5) model to time and compare against")
    parser.add_argument("--runs", type=positive_int, default=200)
    parser.add_argument("--warmup", type=positive_int, default=20)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--unsafe-load", action="store_true",
                        help="load --keras outside Keras safe mode (runs the code of Lambda layers; only for files you trust)")
    args = parser.parse_args(argv)
    load_tensorflow()
    result = benchmark(args.model, args.data, args.keras, args.runs, args.warmup, args.seed, args.unsafe_load)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"file          {result['file']}")
    print(f"size          {result['size_bytes'] / 1024:.1f} KB (gzip {result['gzip_bytes'] / 1024:.1f} KB)")
    print(f"sparsity      {100 * result['weight_sparsity']:.1f} % of weights are zero")
    print(f"ops           {', '.join(result['ops'])}")
    for key, value in result.items():
        if key.startswith("latency_") or key == "keras_latency":
            print(f"{key:<13} median {value['median_ms']:.4f} ms, p90 {value['p90_ms']:.4f} ms ({value['runs']} runs)")
    if "speedup_1_thread_vs_keras" in result:
        print(f"speed-up      {result['speedup_1_thread_vs_keras']:.1f}x vs Keras (1 LiteRT thread)")
    if "test" in result:
        line = f"test accuracy {100 * result['test']['accuracy']:.2f} % on LiteRT"
        if "agreement" in result["test"]:
            line += f", top-1 agreement with Keras {100 * result['test']['agreement']:.2f} %"
        print(line)
    return 0

