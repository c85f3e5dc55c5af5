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

import contextlib
import json
import os
import shutil
import tempfile

from kdtf._keras import tf
from kdtf.catalog import STRATEGIES

__all__ = ["STRATEGIES", "make_strategy", "describe", "is_chief", "several_workers", "worker_scratch"]


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
            reason = str(error).splitlines()[0].split(". ")[0]
            raise ValueError(f"No TPU found for --strategy tpu (TPU_NAME={os.environ.get('TPU_NAME', 'local')!r}): {reason}") from None
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


def is_chief(strategy):
    """False on the non-chief workers of a multi-worker strategy (they write no run folder)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def several_workers(strategy=None):
    """True under a strategy with more than one worker process (they must train in step)."""
    strategy = strategy or tf.distribute.get_strategy()
    return getattr(strategy.extended, "_num_workers", 1) > 1


@contextlib.contextmanager
def worker_scratch(strategy):
    """On the chief (or a single process): yields ``None``. On another worker: yields a
    temporary folder for the run folder and caches it must not share, removed after."""
    if is_chief(strategy):
        yield None
        return
    scratch = tempfile.mkdtemp(prefix="kdtf-worker-")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
