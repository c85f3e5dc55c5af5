"""One epoch of the Distiller under MultiWorkerMirroredStrategy with two local worker
processes (TF_CONFIG set by the caller), or on one device ("single"). Saves the
student's weights to the .npz path given. Run each mode in its own process."""
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
mode, out = sys.argv[1], sys.argv[2]
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.dirname(os.path.dirname(HERE))]
from kdtf.distribute import make_strategy

strategy = make_strategy("multiworker") if mode == "worker" else tf.distribute.OneDeviceStrategy("/cpu:0")
import numpy as np

from kdtf import Distiller, keras

from helpers import tiny_cnn

rng = np.random.default_rng(0)
x = rng.random((64, 8, 8, 1), dtype=np.float32)
y = rng.integers(0, 4, 64).astype(np.int32)
with strategy.scope():
    s, t = tiny_cnn(4, 8, "student", seed=2), tiny_cnn(16, 32, "teacher", seed=1)
    d = Distiller(s, t, temperature=2.0, alpha=0.5)
    d.compile(keras.optimizers.SGD(0.1))
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # global batches of 16
d.fit(ds, epochs=1, verbose=0, shuffle=False)
np.savez(out, *s.get_weights())
print("replicas:", strategy.num_replicas_in_sync)
