"""One epoch of the Distiller under MirroredStrategy on two logical CPU devices vs one
device on the same global batches
prints the largest weight difference. Run in its own
process: logical devices and strategies are process-global."""
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.dirname(os.path.dirname(HERE))]
from kdtf import Distiller, keras

from helpers import tiny_cnn

rng = np.random.default_rng(0)
x = rng.random((64, 8, 8, 1), dtype=np.float32)
y = rng.integers(0, 4, 64).astype(np.int32)
def train(strategy):
    with strategy.scope():
        s, t = tiny_cnn(4, 8, "student", seed=2), tiny_cnn(16, 32, "teacher", seed=1)
        d = Distiller(s, t, temperature=2.0, alpha=0.5)
        d.compile(keras.optimizers.SGD(0.1))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    d.fit(ds, epochs=1, verbose=0, shuffle=False)
    return s.get_weights()
single = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
mirrored = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single, mirrored))
print("max weight difference:", diff)
