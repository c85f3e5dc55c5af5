"""Weight clustering with TF-MOT: :func:`cluster` / :func:`strip_clustering`.

Each chosen kernel is replaced by ``clusters`` shared values (centroids) plus an index per
weight; after :func:`strip_clustering` the kernel holds at most ``clusters`` distinct
values, which gzip and int8 export both exploit. With ``preserve_sparsity=True`` zeros
from an earlier pruning step stay zero (sparsity-preserving clustering, the first half of
PCQAT; follow with ``quantize(..., preserve="clusters+sparsity")``).
"""

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper

from kdtf import validation
from kdtf.compress.layers import require_graph_model, select_layers, wrap_layers

__all__ = ["cluster", "strip_clustering", "is_clustered", "INITIALIZATIONS"]

_clustering = tfmot.clustering.keras
INITIALIZATIONS = {
    "kmeans++": _clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
    "linear": _clustering.CentroidInitialization.LINEAR,
    "density": _clustering.CentroidInitialization.DENSITY_BASED,
    "random": _clustering.CentroidInitialization.RANDOM,
}


def cluster(model, clusters=16, *, init="kmeans++", preserve_sparsity=False, layers=None, skip=None, min_weights=0):
    """Wraps the chosen layers of ``model`` for weight clustering.

    Args:
        model: Sequential or Functional tf_keras model, already trained.
        clusters: number of shared values per kernel, >= 2.
        init: centroid initialisation: ``"kmeans++"``, ``"linear"``, ``"density"`` or
            ``"random"``.
        preserve_sparsity: keep zero weights at zero (after pruning).
        layers, skip, min_weights: which layers, as in :func:`kdtf.compress.prune`.

    Returns:
        A new model with ``ClusterWeights`` wrappers; fine-tune it, then strip.
    """
    model = require_graph_model(model)
    validation.integer("clusters", clusters, 2)
    if init not in INITIALIZATIONS:
        raise ValueError(f"Unknown centroid initialisation {init!r}. Expected one of {', '.join(INITIALIZATIONS)}.")
    chosen = select_layers(model, layers, skip, min_weights)
    if not chosen:
        raise ValueError(f"No layer of '{model.name}' would be clustered (min_weights={min_weights}, skip={skip}).")
    params = {
        "number_of_clusters": clusters,
        "cluster_centroids_init": INITIALIZATIONS[init],
        "preserve_sparsity": bool(preserve_sparsity),
    }
    return wrap_layers(model, chosen, lambda layer: _clustering.cluster_weights(layer, **params))


def strip_clustering(model):
    """Removes clustering wrappers; kernels keep their clustered values."""
    return _clustering.strip_clustering(model)


def is_clustered(model):
    """True when ``model`` holds clustering wrappers."""
    return any(isinstance(layer, cluster_wrapper.ClusterWeights) for layer in model.layers)
