"""One BYOL epoch under MultiWorkerMirroredStrategy (two local worker processes, TF_CONFIG
set by the caller) or on one device ("single")
saves online and target weights to the
.npz path given. No BatchNormalization (per-replica statistics differ by design)."""
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

from kdtf import keras
from kdtf.ssl import BYOL

from helpers import byol_batch_views as views
from helpers import byol_encoder as encoder

v1, v2 = views(n=32)
with strategy.scope():
    byol = BYOL(encoder(bn=False), base_tau=0.9, total_steps=4, projection_dim=4, hidden_dim=8, batch_norm=False, center_projection=False)
    byol.compile(keras.optimizers.SGD(0.5))
byol.fit(tf.data.Dataset.from_tensor_slices((v1, v2)).batch(16), epochs=1, verbose=0, shuffle=False)
weights = [w.numpy() for w in byol.online_variables + byol.target_encoder.trainable_weights + byol.target_projector.trainable_weights]
np.savez(out, *weights)
print("replicas:", strategy.num_replicas_in_sync)
