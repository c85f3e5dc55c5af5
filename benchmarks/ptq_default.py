"""int8 without QAT: the TFLite converter's post-training quantization (kdtf's default
under --no-qat) against litert-quantizer's (--ptq int8), on the same compressed model.

    python scripts/distill.py --no-qat --output RUN_DIR      # the default run without QAT
    python benchmarks/ptq_default.py RUN_DIR                 # both int8 files of its model

Each file is calibrated as the pipeline calibrates it (converter: export_for_android's
256 training examples, seed 0; litert-quantizer: the pipeline's 256 examples for
--ptq) and evaluated on LiteRT on the whole test split.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--output", default="benchmarks/results/ptq_default/results.json")
    args = parser.parse_args()
    from kdtf import export
    from kdtf.data import load
    from kdtf.saving import load_model

    report = json.load(open(os.path.join(args.run_dir, "report.json")))
    config = report["config"]
    data = load(config["dataset"], seed=config["seed"])
    model = load_model(os.path.join(args.run_dir, report["stages"][3]["file"]))
    test = data.dataset("test", 64)
    converter = export.to_tflite(model, "int8", representative_data=data.sample("train", 256, seed=0)[0], max_examples=256)
    litert = export.post_training_quantize(export.to_tflite(model, "float32"), "int8", data.sample("train", 256, seed=None)[0])
    rows = {"keras float": {"accuracy": report["stages"][3]["accuracy"]}}
    for name, flatbuffer in (("converter int8 (default)", converter), ("litert-quantizer int8 (--ptq int8)", litert)):
        result = export.evaluate(flatbuffer, test, keras_model=model)
        rows[name] = {"accuracy": result["accuracy"], "agreement": result["agreement"], "bytes": len(flatbuffer)}
        print(f"{name}: accuracy {result['accuracy']:.4f}, agreement with Keras {result['agreement']:.4f}, {len(flatbuffer)} bytes")
    out = {"run": report["stages"][-1], "command": f"python benchmarks/ptq_default.py {args.run_dir}", "rows": rows}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
