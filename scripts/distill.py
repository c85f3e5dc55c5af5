#!/usr/bin/env python
"""Distil, prune, quantize and export a student: the whole kdtf chain in one command.

    python scripts/distill.py                       # offline default: MNIST (5,000 digits)
    python scripts/distill.py --epochs 5 --sparsity 0.5 --output saved_models/try
    python scripts/distill.py --config configs/default.yaml --seed 1
    python scripts/distill.py --dataset folder:PATH --teacher mobilenet_v2 \\
        --teacher-weights mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5 --image-size 96

A YAML file given by --config sets defaults; flags override it. The final arguments are
saved as args.yaml in the run folder.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kdtf.commands.distill import main, parse_args  # noqa: E402,F401  (the same as `kdtf distill`)

if __name__ == "__main__":
    sys.exit(main())
