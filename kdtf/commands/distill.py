"""Distil, prune, quantize and export a student: the whole kdtf chain in one command.

    kdtf distill                       # offline default: MNIST (5,000 digits)
    kdtf distill --epochs 5 --sparsity 0.5 --output saved_models/try
    kdtf distill --config configs/default.yaml --seed 1
    kdtf distill --dataset folder:PATH --teacher mobilenet_v2 \\
        --teacher-weights mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5 --image-size 96

A YAML file given by --config sets defaults; flags override it. The final arguments are
saved as args.yaml in the run folder.
"""

import os

from kdtf import catalog  # light: no TensorFlow before the flags are checked
from kdtf.cli import VERBOSE_HELP, exit_on_error, load_tensorflow, parse_config, validated
from kdtf.compress.forms import step_forms  # pure Python, like the catalog
from kdtf.config import DistillConfig

_MODELS = ", ".join(catalog.MODELS + catalog.BACKBONES)
HELP = {
    "dataset": f"data set spec: {', '.join(catalog.data_specs())} (one subfolder per class)",
    "data_dir": "folder of prepared TFDS data (tfds: specs never download)",
    "image_size": "resize images to N x N (0: the data set's size; folders default to 96)",
    "augment": f"keras-cv augmentation in tf.data, comma-separated: {', '.join(catalog.AUGMENTATIONS)}",
    "transfer_set": "extra unlabeled images for distillation, e.g. folder:PATH",
    "target_set": "unlabeled target-domain images (folder:PATH or a spec) for the alignment terms mmd/coral, e.g. --distill kd,mmd@fc1/fc1",
    "val_fraction": "fraction of the examples held out for validation where the data set has no validation split",
    "test_fraction": "fraction of the examples held out for the test split where the data set has no test split",
    "seed": "seed of the split, the initial weights and the shuffling",
    "teacher": f"teacher: auto (teacher_cnn up to 28 px, photo_teacher above), {_MODELS} (trained here), "
               "or your own trained model file PATH.keras (tf_keras or Keras 3)",
    "student": f"student: auto (student_cnn up to 28 px, photo_student above), {_MODELS}",
    "teacher_weights": f"local no-top weights file of a backbone teacher ({', '.join(catalog.BACKBONES)})",
    "student_weights": "local no-top weights of a backbone student (teacher-assisted fine-tuning)",
    "unfreeze_layers": "backbone layers unfrozen in the second fine-tuning phase",
    "finetune_epochs": "epochs of the second (unfrozen) fine-tuning phase of pretrained backbones",
    "teacher_epochs": "epochs to train the teacher (cached by settings); 0: auto, 12, and for a teacher trained from scratch "
                      "on images above 28 px enough epochs for 480 optimizer steps (default: 0)",
    "teacher_augment": "augmentation of the teacher stage only (names as --augment, or none); auto: flip,crop for a teacher "
                       "trained from scratch on images above 28 px when --augment is empty, else --augment (default: auto)",
    "epochs": "epochs for the scratch and the distilled student",
    "prune_epochs": "fine-tuning epochs of each compression step but QAT",
    "qat_epochs": "epochs of quantization-aware training while distilling",
    "batch_size": "batch size",
    "learning_rate": "peak learning rate of the teacher and the students",
    "optimizer": "sgd, adam or adamw, for every stage",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay: L2 on kernels for sgd/adam, decoupled for adamw",
    "lr_schedule": "learning-rate schedule: constant, cosine or step (x0.1 at 50 % and 75 %)",
    "warmup_epochs": "epochs of linear warm-up of the teacher and students",
    "l1": "L1 kernel regularisation factor",
    "clip_norm": "clip the global gradient norm (0: off; default 1.0 for sgd, off for adam/adamw)",
    "finetune_learning_rate": "learning rate of backbone fine-tuning and of each compression step",
    "temperature": "distillation temperature T > 0",
    "alpha": "weight of the label cross-entropy, in [0, 1]",
    "sparsity": "shortcut: the sparsity S of the default --compress prune:S,qat, in [0, 1) (refused beside --compress)",
    "distill": f"distillation terms name:weight@student_layer/teacher_layer#teacher, e.g. 'kd:1.0,fitnets:0.5@conv2/conv4' ({', '.join(catalog.TERMS)})",
    "compress": f"compression steps, e.g. 'prune:0.75,qat', 'filters:0.5,qat', '2:4,qat', 'cluster:16,qat', 'lowrank:0.9,qat' "
                f"({', '.join(step_forms())}; default: prune:<--sparsity>,qat, without qat under --no-qat; "
                "see docs/compression.md)",
    "labels": "keep N training labels (stratified); the rest is an unlabeled transfer set for distillation; 0 keeps all "
              "(default: 500 on the bundled demo sets mnist5k/digits/cluttered, every label on your own data)",
    "prune_min_weights": "layers with fewer kernel weights stay dense",
    "cache_teacher": "compute the teacher's outputs once and train from them: on, off, "
                     "or views:K[:TOPK] with --augment: store the teacher's top-k probabilities on K replayable views "
                     "of each example (FKD; default top-5; 'all' keeps every class); auto: on without --augment, "
                     "views:8 with a replayable --augment when the store fits half the free disk under --cache-dir",
    "strategy": f"tf.distribute strategy: {', '.join(catalog.STRATEGIES)}",
    "output": "run folder (default: saved_models/<dataset>-<time>)",
    "cache_dir": "folder of cached teachers, decoded images (image folders, TFDS) and teacher outputs",
    "latency_runs": "timed invocations per latency measurement (0: not timed, no TFLite export of the Keras stages for it)",
    "progressive_epochs": "Transformer students: epochs per student block of layer-wise distillation (hidden states and "
                          "attention of the mapped blocks) before the end-to-end distillation; 0: off",
    "ptq": f"with --no-qat: post-training quantization by litert-quantizer ({', '.join(catalog.PTQ_MODES)}); empty: the converter's int8",
    "ptq_max_drop": "with --ptq-mixed: largest accepted accuracy drop against float",
    "mutual": "also train N >= 2 students together by Deep Mutual Learning (kdtf.MutualDistiller); 0: off",
    "verbose": VERBOSE_HELP,
}
FLAG_NAMES = {"learning_rate": "--lr", "finetune_learning_rate": "--finetune-lr"}
SWITCHES = [
    ("--no-qat", "qat", "shortcut: the default --compress without qat; int8 then uses post-training calibration "
                        "(refused beside --compress)"),
    ("--ptq-mixed", "ptq_mixed", "with --ptq: keep the most sensitive ops in float until within --ptq-max-drop of float"),
    ("--allow-weak-teacher", "allow_weak_teacher", "go on when the teacher is barely above chance on the validation split"),
    ("--allow-collapse", "allow_collapse", "go on (with a warning) when a trained student is at chance or predicts one class"),
    ("--mutual-teacher", "mutual_teacher", "with --mutual: the peers also learn from the teacher (T, alpha of --distill)"),
    ("--unsafe-load", "unsafe_load", "load a --teacher .keras file outside Keras safe mode: runs the Python code of its "
                                     "Lambda layers. Only for files you trust"),
]


GROUPS = [
    ("data", ["dataset", "data_dir", "image_size", "augment", "teacher_augment", "transfer_set", "labels", "val_fraction", "test_fraction", "seed"]),
    ("models", ["teacher", "student", "teacher_weights", "student_weights", "unsafe_load", "allow_weak_teacher"]),
    ("distillation", ["distill", "temperature", "alpha", "cache_teacher", "progressive_epochs"]),
    ("training", ["teacher_epochs", "epochs", "batch_size", "learning_rate", "optimizer", "momentum", "weight_decay",
                  "lr_schedule", "warmup_epochs", "l1", "unfreeze_layers", "finetune_epochs", "finetune_learning_rate"]),
    ("compression and export", ["compress", "sparsity", "qat", "prune_epochs", "qat_epochs", "prune_min_weights", "ptq",
                                "ptq_mixed", "ptq_max_drop", "latency_runs"]),
    ("running", ["config", "output", "cache_dir", "resume", "verbose", "strategy"]),
]


def parse_args(argv):
    return parse_config(DistillConfig, argv, description=__doc__, help_texts=HELP, flag_names=FLAG_NAMES, switches=SWITCHES,
                        groups=GROUPS)


@exit_on_error
def main(argv=None):
    config, resume = parse_args(argv)
    validated(config, FLAG_NAMES)  # before TensorFlow loads
    config.output = config.output or config.default_output()
    if not resume and os.path.exists(os.path.join(config.output, "manifest.json")):
        raise ValueError(f"--output {config.output!r} already holds a run; continue it with --resume {config.output}, or choose another --output.")
    load_tensorflow()
    from kdtf import pipeline
    from kdtf.distribute import make_strategy

    strategy = make_strategy(config.strategy)  # first: multi-worker setup must precede other TF work
    report = pipeline.run(config, strategy, resume=resume)
    from kdtf.report import render_summary

    print("\n" + render_summary(report, config.output), flush=True)
    return 0

