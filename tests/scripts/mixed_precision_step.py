"""Two epochs of the Distiller under the mixed-precision policy given as argv[1]; prints
the optimizer type, the compute dtype and the logged losses. Run in its own process."""
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.dirname(os.path.dirname(HERE))]
from kdtf import Distiller, keras

from helpers import tiny_cnn

policy = sys.argv[1]
keras.mixed_precision.set_global_policy(policy)
s, t = tiny_cnn(4, 8, "student", seed=2), tiny_cnn(16, 32, "teacher", seed=1)
d = Distiller(s, t)
d.compile(keras.optimizers.Adam(1e-2))
rng = np.random.default_rng(0)
x = rng.random((64, 8, 8, 1), dtype=np.float32)
y = rng.integers(0, 4, 64).astype(np.int32)
h = d.fit(x, y, batch_size=16, epochs=2, verbose=0)
import json

print(json.dumps({"optimizer": type(d.optimizer).__name__, "compute_dtype": s.layers[0].compute_dtype, "history": {k: [float(v) for v in vals] for k, vals in h.history.items()}}))
