#!/usr/bin/env python
"""Size, gzip size, ops, latency and (with --data) accuracy of a .tflite on LiteRT.

    python scripts/benchmark_tflite.py saved_models/RUN/student_int8.tflite --data mnist5k
    python scripts/benchmark_tflite.py model.tflite --keras saved_models/RUN/student.keras

Latency: median and p90 over --runs batch-1 invocations after --warmup, with 1 thread and
with every core. With --keras, the Keras model is timed in the same run for a speed-up
ratio, and accuracy agreement with it is reported.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kdtf.commands.bench_tflite import main  # noqa: E402,F401  (the same as `kdtf bench-tflite`)

if __name__ == "__main__":
    sys.exit(main())
