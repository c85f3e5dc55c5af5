"""tf.distribute strategies by name: ``--strategy default|mirrored|multiworker|tpu``.

* ``mirrored``: one machine, every GPU (or, without GPUs, every logical CPU device;
  one replica on a plain CPU). Batches are global: each of the N replicas gets
  ``batch_size / N`` examples, and the Distiller divides each replica's mean loss by N
  before gradients are summed, so the update equals one device on the global batch.
* ``multiworker``: ``MultiWorkerMirroredStrategy``; the cluster comes from the
  ``TF_CONFIG`` environment variable (one process per machine, same command on each;
  without ``TF_CONFIG`` it is a single worker). Create it before anything else touches
  TensorFlow devices.
* ``tpu``: ``TPUStrategy`` on the TPU named by ``TPU_NAME`` (Cloud TPU VM: local).

Build and compile models inside ``strategy.scope()``; ``fit`` distributes the
``tf.data`` pipeline itself.
"""

import json
import os

from kdtf._keras import tf

__all__ = ["STRATEGIES", "make_strategy", "describe"]

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def make_strategy(name="default"):
    """Returns the ``tf.distribute`` strategy called ``name`` (see the module doc)."""
    if name in (None, "", "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(cpus)
    if name == "multiworker":
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"Could not start MultiWorkerMirroredStrategy from TF_CONFIG={os.environ.get('TF_CONFIG', '')!r}: {error}") from None
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", "local"))
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise ValueError(f"No TPU found for --strategy tpu (TPU_NAME={os.environ.get('TPU_NAME', 'local')!r}): {str(error).splitlines()[0].split('. ')[0]}") from None
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown strategy {name!r} (--strategy). Known: {', '.join(STRATEGIES)}")


def describe(strategy):
    """One line: the strategy, its replicas and, for several workers, the cluster."""
    kind = "MultiWorkerMirroredStrategy" if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else type(strategy).__name__
    text = f"{kind}, {strategy.num_replicas_in_sync} replica(s)"
    config = os.environ.get("TF_CONFIG")
    if config and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        task = json.loads(config).get("task", {})
        text += f", worker {task.get('index')} of {len(json.loads(config).get('cluster', {}).get('worker', []))}"
    return text
