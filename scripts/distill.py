#!/usr/bin/env python
"""Distil, prune, quantize and export a student: the whole kdtf chain in one command.

    python scripts/distill.py                       # offline default: MNIST (5,000 digits)
    python scripts/distill.py --epochs 5 --sparsity 0.5 --output saved_models/try
    python scripts/distill.py --config configs/default.yaml --seed 1
    python scripts/distill.py --dataset folder:PATH --teacher mobilenet_v2 \
        --teacher-weights mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5 --image-size 96

A YAML file given by --config sets defaults; flags override it. The final arguments are
saved as args.yaml in the run folder.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import dataclasses  # noqa: E402

from kdtf.cli import ArgumentParser, exit_on_error, load_yaml_defaults, resume_args  # noqa: E402
from kdtf.config import DistillConfig  # noqa: E402

FLAGS = {  # flag -> (config field, type, help)
    "--dataset": ("dataset", str, "data set spec: mnist5k, digits, tfds:NAME[:CONFIG], folder:PATH (one subfolder per class)"),
    "--data-dir": ("data_dir", str, "folder of prepared TFDS data (tfds: specs never download)"),
    "--image-size": ("image_size", int, "resize images to N x N (0: the data set's size; folders default to 96)"),
    "--augment": ("augment", str, "keras-cv augmentation in tf.data: flip, crop, randaugment, jitter, mixup, cutmix (comma-separated)"),
    "--transfer-set": ("transfer_set", str, "extra unlabeled images for distillation, e.g. folder:PATH"),
    "--seed": ("seed", int, "seed of the split, the initial weights and the shuffling"),
    "--teacher": ("teacher", str, "teacher: a kdtf.models name (trained here) or your own trained model file PATH.keras"),
    "--student": ("student", str, "student model from kdtf.models"),
    "--teacher-weights": ("teacher_weights", str, "local no-top weights file of a backbone teacher (mobilenet_v2, resnet50, efficientnet_b0)"),
    "--student-weights": ("student_weights", str, "local no-top weights of a backbone student (teacher-assisted fine-tuning)"),
    "--unfreeze-layers": ("unfreeze_layers", int, "backbone layers unfrozen in the second fine-tuning phase"),
    "--finetune-epochs": ("finetune_epochs", int, "epochs of the second (unfrozen) fine-tuning phase of pretrained backbones"),
    "--teacher-epochs": ("teacher_epochs", int, "epochs to train the teacher (cached by settings)"),
    "--epochs": ("epochs", int, "epochs for the scratch and the distilled student"),
    "--prune-epochs": ("prune_epochs", int, "epochs of pruning while distilling"),
    "--qat-epochs": ("qat_epochs", int, "epochs of quantization-aware training while distilling"),
    "--batch-size": ("batch_size", int, "batch size"),
    "--lr": ("learning_rate", float, "Adam learning rate for teacher and students"),
    "--finetune-lr": ("finetune_learning_rate", float, "learning rate for pruning and QAT"),
    "--temperature": ("temperature", float, "distillation temperature T > 0"),
    "--alpha": ("alpha", float, "weight of the label cross-entropy, in [0, 1]"),
    "--sparsity": ("sparsity", float, "target sparsity of pruned layers, in [0, 1)"),
    "--distill": ("distill", str, "distillation terms, e.g. 'kd:1.0,fitnets:0.5@conv2/conv4' (student/teacher layers; kd, dkd, fitnets, at, rkd_distance, rkd_angle, sp, embedding)"),
    "--compress": ("compress", str, "compression steps, e.g. 'prune:0.75,qat', '2:4,qat', 'cluster:16,qat', 'lowrank:0.9,qat' (default: from --sparsity and --no-qat)"),
    "--labels": ("labels", int, "keep N training labels (stratified); the rest is an unlabeled transfer set for distillation (0: keep all)"),
    "--prune-min-weights": ("prune_min_weights", int, "layers with fewer kernel weights stay dense"),
    "--cache-teacher": ("cache_teacher", str, "compute the teacher's outputs once and train from them: auto (when no --augment), on, off"),
    "--strategy": ("strategy", str, "tf.distribute strategy: default, mirrored (all GPUs of this machine), multiworker (TF_CONFIG), tpu"),
    "--output": ("output", str, "run folder (default saved_models/<dataset>-<time>)"),
    "--cache-dir": ("cache_dir", str, "folder of cached teachers"),
    "--latency-runs": ("latency_runs", int, "timed invocations per latency measurement"),
    "--verbose": ("verbose", int, "Keras verbosity: 0, 1 (bars) or 2 (a line per epoch)"),
}


def parse_args(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    fields = {f.name for f in dataclasses.fields(DistillConfig)}
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    defaults = dataclasses.asdict(DistillConfig())
    if known.config:
        defaults.update(load_yaml_defaults(known.config, fields))

    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of defaults (keys are the config fields)")
    for flag, (dest, kind, help_text) in FLAGS.items():
        parser.add_argument(flag, dest=dest, type=kind, default=defaults[dest], help=f"{help_text} (default: %(default)s)")
    parser.add_argument("--no-qat", dest="qat", action="store_false", default=defaults["qat"],
                        help="skip quantization-aware training; int8 uses post-training calibration")
    parser.add_argument("--unsafe-load", dest="unsafe_load", action="store_true", default=defaults["unsafe_load"],
                        help="load a --teacher .keras file outside Keras safe mode: runs the Python code of its "
                             "Lambda layers. Only for files you trust")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue a killed run from its last completed stage and epoch, with the arguments saved in RUN_DIR/args.yaml")
    args = vars(parser.parse_args(argv))
    args.pop("config")
    resume = args.pop("resume")
    if resume:
        verbose = args["verbose"]
        args = dict(dataclasses.asdict(DistillConfig()), **resume_args(resume, argv, fields))
        args["output"] = resume
        if any(a.split("=")[0] == "--verbose" for a in argv):
            args["verbose"] = verbose
    return DistillConfig(**args), bool(resume)


@exit_on_error
def main(argv=None):
    config, resume = parse_args(argv)
    config.validate()
    from kdtf import pipeline
    from kdtf.distribute import make_strategy

    strategy = make_strategy(config.strategy)  # first: multi-worker setup must precede other TF work
    config.output = config.output or config.default_output()
    from kdtf.runstate import MANIFEST

    if not resume and os.path.exists(os.path.join(config.output, MANIFEST)):
        raise ValueError(f"--output {config.output!r} already holds a run; continue it with --resume {config.output}, or choose another --output.")
    pipeline.run(config, strategy, resume=resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
