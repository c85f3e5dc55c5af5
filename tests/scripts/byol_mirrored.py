"""Two BYOL steps under MirroredStrategy on two logical CPUs vs one device (encoder and
MLPs without BatchNormalization, whose per-replica statistics would differ by design).
Prints the largest online and target weight differences."""
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
from kdtf import keras
from kdtf.ssl import BYOL

from helpers import byol_batch_views as views
from helpers import byol_encoder as encoder

v1, v2 = views(n=32)
def train(strategy):
    with strategy.scope():
        byol = BYOL(encoder(bn=False), base_tau=0.9, total_steps=4, projection_dim=4, hidden_dim=8, batch_norm=False, center_projection=False)
        byol.compile(keras.optimizers.SGD(0.5))
    byol.fit(tf.data.Dataset.from_tensor_slices((v1, v2)).batch(16), epochs=1, verbose=0, shuffle=False)
    return [w.numpy() for w in byol.online_variables], [w.numpy() for w in byol.target_encoder.weights + byol.target_projector.weights]
single = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
mirrored = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print(*(max(float(np.max(np.abs(a - b))) for a, b in zip(s, m)) for s, m in zip(single, mirrored)))
