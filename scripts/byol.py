#!/usr/bin/env python
"""BYOL pretraining, label-free distillation of the encoder, compression, int8 export,
evaluation with few labels: the whole chain in one command, offline.

    python scripts/byol.py                              # mnist5k, default settings
    python scripts/byol.py --pretrain-epochs 10 --output saved_models/byol-try
    python scripts/byol.py --config my.yaml --seed 1

A YAML file given by --config sets defaults; flags override it; the final arguments are
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
from kdtf.config import ByolConfig  # noqa: E402

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
    "sparsity": "target sparsity of the pruned layers, in [0, 1)",
    "batch_size": "batch size (BYOL uses full batches only)",
    "learning_rate": "Adam learning rate of BYOL",
    "distill_learning_rate": "Adam learning rate of the distillation (compression: a third of it)",
    "base_tau": "BYOL's EMA rate at step 0 (rises to 1 by a cosine schedule)",
    "crop_area": "smallest crop area of the BYOL views, in (0, 1]",
    "labels_per_class": "labels per class for the linear probe and k-NN",
    "knn_k": "neighbours of the k-NN evaluation",
    "latency_runs": "timed invocations of the LiteRT latency measurement",
    "seed": "seed of the split, initial weights, views and labelled subset",
    "output": "run folder (default saved_models/byol-<dataset>-<time>)",
    "verbose": "Keras verbosity: 0, 1 (bars) or 2 (a line per epoch)",
}


def parse_args(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    fields = {f.name: f for f in dataclasses.fields(ByolConfig)}
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    defaults = dataclasses.asdict(ByolConfig())
    if known.config:
        defaults.update(load_yaml_defaults(known.config, set(fields)))
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of defaults (keys are the config fields)")
    for name, field in fields.items():
        if field.type in (bool, "bool"):
            continue
        kind = {"int": int, "float": float, "str": str}.get(field.type, field.type)
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=defaults[name],
                            help=f"{HELP.get(name, name)} (default: %(default)s)")
    parser.add_argument("--flip", dest="flip", action="store_true", default=defaults["flip"], help="random horizontal flips in the BYOL views")
    parser.add_argument("--no-qat", dest="qat", action="store_false", default=defaults["qat"], help="skip QAT; int8 uses post-training calibration")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue a killed run from its last completed stage and epoch, with the arguments saved in RUN_DIR/args.yaml")
    args = vars(parser.parse_args(argv))
    args.pop("config")
    resume = args.pop("resume")
    if resume:
        verbose = args["verbose"]
        args = dict(dataclasses.asdict(ByolConfig()), **resume_args(resume, argv, set(fields)))
        args.update(output=resume, verbose=verbose)
    return ByolConfig(**args), bool(resume)


@exit_on_error
def main(argv=None):
    config, resume = parse_args(argv)
    config.validate()
    from kdtf.ssl import pipeline

    pipeline.run(config, resume=resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
