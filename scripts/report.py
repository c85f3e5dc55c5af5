#!/usr/bin/env python
"""Print a run's result table, and render its report.md and plot.png again from report.json.

    python scripts/report.py saved_models/mnist5k-20261123-210000     # the same as: kdtf report RUN_DIR
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kdtf.commands.report import main  # noqa: E402,F401  (the same as `kdtf report`)

if __name__ == "__main__":
    sys.exit(main())
