#!/usr/bin/env python
"""Where MobileNetV2's accuracy goes at 50 % of the filters removed: the recovery or the
int8 step? One seed per call; float, post-training int8 and QAT accuracy of the
unpruned student and of the student pruned and recovered in each named way.

    python benchmarks/filter_recovery_probe.py --seed 1 --variants teacher-6-3e-4 self-6-3e-4 self-6-1e-3 \\
        --out benchmarks/results/structured_pruning/recovery_probe

A variant is ``WHO-EPOCHS-LR``: recovery from the ``teacher`` or from the unpruned student
(``self``), for EPOCHS epochs over 3 rounds at learning rate LR, always with the filter
step's default loss (logit KL at T = 1, no labels). The regime, models and QAT step are
those of ``structured_pruning.py --models mobilenet_v2 --epochs 8 --qat-epochs 1``;
``--qat-variants`` adds QAT of the unpruned student with other losses. Writes
``--out``/seedN.json after every measurement.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import types  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8, help="distillation epochs of the unpruned student")
    parser.add_argument("--variants", nargs="*", default=["teacher-6-3e-4", "self-6-3e-4"])
    parser.add_argument("--qat-variants", action="store_true",
                        help="also QAT the unpruned student with logit KL at T = 1 from the teacher and from itself")
    parser.add_argument("--out", default="benchmarks/results/structured_pruning/recovery_probe")
    args = parser.parse_args(argv)

    import structured_pruning as bench

    from kdtf import Distiller, DistillSpec, FineTuner, export, keras
    from kdtf.compress import FilterPrune, clone_with_weights
    from kdtf.compress.filter_rounds import LOGIT_RECOVERY
    from kdtf.io import write_text

    from label_scarce import LabelScarce

    setup = LabelScarce(args.seed, 500, image_size=96)
    teacher = setup.supervised("teacher_cnn", 12, seed_offset=0, native_size=28)
    student = setup.build("mobilenet_v2", seed_offset=1)
    distiller = Distiller(student, teacher, temperature=4.0, alpha=0.5)
    distiller.compile(keras.optimizers.Adam(1e-3))
    distiller.fit(setup.train_ds, epochs=args.epochs, verbose=0)
    result = {"seed": args.seed, "teacher float": setup.accuracy(teacher), "unpruned float": setup.accuracy(student)}

    def record(key, value):
        result[key] = value
        write_text(os.path.join(args.out, f"seed{args.seed}.json"), json.dumps(result, indent=1) + "\n")
        print(f"{key}: {value:.4f}", flush=True)

    def int8_accuracy(flatbuffer):
        return export.evaluate(flatbuffer, setup.data.x_test, setup.data.y_test)["accuracy"]

    def ptq(model):
        return int8_accuracy(export.to_tflite(model, "int8", representative_data=setup.data.x_train[:256]))

    record("unpruned ptq", ptq(student))
    qat_args = argparse.Namespace(temperature=4.0, alpha=0.5, finetune_learning_rate=3e-4, prune_epochs=6, qat_epochs=1, int8="qat")
    keras.utils.set_random_seed(args.seed)
    record("unpruned qat", int8_accuracy(bench.to_int8(clone_with_weights(student), bench.recovery(setup, teacher, "distillation", qat_args),
                                                       setup, qat_args)))
    if args.qat_variants:
        for name, overrides in [("logits from the teacher", {}), ("logits from itself", {"teacher": clone_with_weights(student)})]:
            keras.utils.set_random_seed(args.seed)
            tuner = FineTuner(teacher, setup.train_ds, spec=DistillSpec(temperature=4.0, alpha=0.5), optimizer=3e-4, steps_per_epoch=setup.steps)
            context = types.SimpleNamespace(fine_tune=functools.partial(tuner, spec=LOGIT_RECOVERY, **overrides))
            record(f"unpruned qat, {name}", int8_accuracy(bench.to_int8(clone_with_weights(student), context, setup, qat_args)))
    for variant in args.variants:
        who, epochs, rate = variant.split("-", 2)
        if who not in ("teacher", "self"):
            raise SystemExit(f"--variants: expected WHO-EPOCHS-LR with WHO teacher or self. Received: {variant!r}")
        run_args = argparse.Namespace(**dict(vars(qat_args), prune_epochs=int(epochs), finetune_learning_rate=float(rate)))
        keras.utils.set_random_seed(args.seed)
        context = bench.recovery(setup, teacher, "distillation", run_args)
        pruned, _ = FilterPrune(0.5, rounds=3, self_distill=who == "self").run(clone_with_weights(student), context)
        record(f"{variant} float", setup.accuracy(pruned))
        record(f"{variant} ptq", ptq(pruned))
        record(f"{variant} qat", int8_accuracy(bench.to_int8(clone_with_weights(pruned), context, setup, run_args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
