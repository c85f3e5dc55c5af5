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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kdtf.commands.byol import main, parse_args  # noqa: E402,F401  (the same as `kdtf byol`)

if __name__ == "__main__":
    sys.exit(main())
