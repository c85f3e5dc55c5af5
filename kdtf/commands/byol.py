"""BYOL pretraining, label-free distillation of the encoder, compression, int8 export,
evaluation with few labels: the whole chain in one command, offline.

    kdtf byol                              # mnist5k, default settings
    kdtf byol --pretrain-epochs 10 --output saved_models/byol-try
    kdtf byol --config my.yaml --seed 1

A YAML file given by --config sets defaults; flags override it; the final arguments are
saved as args.yaml in the run folder.
"""



from kdtf.cli import VERBOSE_HELP, exit_on_error, load_tensorflow, parse_config  # light: no TensorFlow yet
from kdtf.config import ByolConfig

HELP = {
    "dataset": "data set spec (images only are used until the evaluation)",
    "teacher": "teacher encoder (teacher_encoder, student_encoder)",
    "student": "student encoder",
    "dim": "embedding width of both encoders",
    "pretrain_epochs": "BYOL epochs of the teacher encoder",
    "student_pretrain_epochs": "BYOL epochs of the student from scratch (baseline)",
    "distill_epochs": "epochs of label-free embedding distillation",
    "prune_epochs": "epochs of pruning while distilling",
    "qat_epochs": "epochs of quantization-aware training while distilling",
    "sparsity": "shortcut: the sparsity S of the default --compress prune:S,qat, in [0, 1) (refused beside --compress)",
    "compress": "compression steps of the distilled encoder, as scripts/distill.py's --compress (default: prune:<--sparsity>,qat)",
    "prune_min_weights": "layers with fewer kernel weights stay dense",
    "batch_size": "batch size (BYOL uses full batches only)",
    "learning_rate": "Adam learning rate of BYOL",
    "distill_learning_rate": "Adam learning rate of the distillation (compression: a third of it)",
    "base_tau": "BYOL's EMA rate at step 0 (rises to 1 by a cosine schedule)",
    "crop_area": "smallest crop area of the BYOL views, in (0, 1]",
    "labels_per_class": "labels per class for the linear probe and k-NN",
    "knn_k": "neighbours of the k-NN evaluation",
    "latency_runs": "timed invocations of the LiteRT latency measurement (0: not timed)",
    "seed": "seed of the split, initial weights, views and labelled subset",
    "output": "run folder (default: saved_models/byol-<dataset>-<time>)",
    "cache_dir": "folder of decoded images (image folders, TFDS) and cached teacher outputs",
    "optimizer": "sgd, adam or adamw, for every stage",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay: L2 on kernels for sgd/adam, decoupled for adamw",
    "lr_schedule": "learning-rate schedule: constant, cosine or step",
    "warmup_epochs": "epochs of linear warm-up of BYOL and the distillation",
    "l1": "L1 kernel regularisation factor",
    "clip_norm": "clip the global gradient norm (0: off; default 1.0 for sgd, off for adam/adamw)",
    "verbose": VERBOSE_HELP,
}


SWITCHES = [
    ("--flip", "flip", "random horizontal flips in the BYOL views"),
    ("--no-qat", "qat", "shortcut: the default --compress without qat; int8 uses post-training calibration (refused beside --compress)"),
]


def parse_args(argv):
    return parse_config(ByolConfig, argv, description=__doc__, help_texts=HELP, switches=SWITCHES)


@exit_on_error
def main(argv=None):
    config, resume = parse_args(argv)
    config.validate()  # before TensorFlow loads
    load_tensorflow()
    from kdtf.ssl import pipeline

    pipeline.run(config, resume=resume)
    return 0

