#!/usr/bin/env python
"""Re-render report.md and plot.png of a run folder from its report.json.

    python scripts/report.py saved_models/mnist5k-20261123-210000
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kdtf.commands.report import main  # noqa: E402,F401  (the same as `kdtf report`)

if __name__ == "__main__":
    sys.exit(main())
