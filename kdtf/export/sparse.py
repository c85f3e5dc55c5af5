"""Sparse float export for XNNPACK's sparse inference path (ARM only).

Magnitude pruning stores its zeros; only XNNPACK's sparse kernels turn them into speed,
and only under narrow conditions (XNNPACK README, "Sparse inference"; Elsen et al.,
"Fast Sparse ConvNets", CVPR 2020):

* float32 or float16 models (no integer quantization);
* a subgraph that starts with a 3x3 stride-2 ``VALID`` convolution on 3 input channels
  behind ``ZeroPadding2D(1)``, continues with 1x1 convolutions, 3x3/5x5 depthwise
  convolutions, BatchNormalization, ReLU-like activations and Add/Multiply, and ends in
  ``GlobalAveragePooling2D(keepdims=True)``;
* sparse 1x1 convolution kernels (XNNPACK switches to sparse kernels above about 2/3
  zeros), encoded as sparse tensors in the flatbuffer (``Optimize.EXPERIMENTAL_SPARSITY``);
* an ARM CPU: on x86 the sparse kernels are off and the model runs dense (same outputs).

:func:`check_xnnpack_sparse` checks the pattern (TF-MOT's ``PruneForLatencyOnXNNPack``
policy), ``kdtf.compress.prune(model, policy="xnnpack")`` prunes only the 1x1
convolutions it can serve, and :func:`to_sparse_tflite` writes the sparse encoding and
checks that the file holds it.
"""

import tensorflow as tf
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_policy

from kdtf.export.flatbuffer import sparse_tensors
from kdtf.io import captured_stderr

__all__ = ["check_xnnpack_sparse", "xnnpack_sparse_layers", "to_sparse_tflite", "SPARSE_MODES"]

SPARSE_MODES = ("float32", "float16")
PATTERN = (
    "XNNPACK's sparse inference needs a subgraph that starts with ZeroPadding2D(1) then a 3x3 "
    "stride-2 'valid' Conv2D on 3 input channels, holds only 1x1 Conv2D, 3x3/5x5 DepthwiseConv2D, "
    "BatchNormalization, ReLU-like activations and Add/Multiply, and ends in "
    "GlobalAveragePooling2D(keepdims=True)"
)


def check_xnnpack_sparse(model):
    """Refuses ``model`` with one line unless it has the layer pattern XNNPACK's sparse
    inference serves (TF-MOT's ``PruneForLatencyOnXNNPack`` check).

    Raises:
        ValueError: naming the model, what TF-MOT found and the pattern required.
    """
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(f"'{model.name}' is a subclassed model: the XNNPACK sparse check needs a Sequential or Functional model.")
    try:
        pruning_policy.PruneForLatencyOnXNNPack().ensure_model_supports_pruning(model)
    except ValueError as error:
        found = str(error).strip().splitlines()[0]
        raise ValueError(f"'{model.name}' cannot use XNNPACK's sparse path ({found}). {PATTERN}.") from None


def xnnpack_sparse_layers(model):
    """Names of the layers XNNPACK's sparse path can run sparse (the 1x1 Conv2D layers),
    after :func:`check_xnnpack_sparse`."""
    check_xnnpack_sparse(model)
    policy = pruning_policy.PruneForLatencyOnXNNPack()
    return [layer.name for layer in model.layers if policy.allow_pruning(layer)]


def to_sparse_tflite(model, mode="float32", *, min_sparse_tensors=1):
    """A float flatbuffer whose pruned weights are encoded sparse for XNNPACK.

    Args:
        model: a pruned tf_keras model (wrappers are stripped) with the XNNPACK pattern.
        mode: ``"float32"`` or ``"float16"`` (XNNPACK's sparse kernels are float only).
        min_sparse_tensors: fewest weight tensors the file must hold in sparse form.

    Returns:
        The flatbuffer bytes.

    Raises:
        ValueError: a mode other than float32/float16, a model without the pattern, or a
            file with fewer sparse tensors than asked (the converter encodes a tensor
            sparse only when enough of it is zero: prune the 1x1 convolutions further).
    """
    from kdtf.export.tflite import _converter, _strip_wrappers

    if mode not in SPARSE_MODES:
        raise ValueError(f"XNNPACK's sparse kernels run float models only: mode must be one of {SPARSE_MODES}. Received: mode={mode!r}")
    model = _strip_wrappers(model)
    check_xnnpack_sparse(model)
    converter = _converter(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if mode == "float16":
        converter.optimizations.append(tf.lite.Optimize.DEFAULT)
        converter.target_spec.supported_types = [tf.float16]
    with captured_stderr():
        flatbuffer = converter.convert()
    found = sparse_tensors(flatbuffer)
    if len(found) < min_sparse_tensors:
        raise ValueError(
            f"The sparse export of '{model.name}' holds {len(found)} sparse tensor(s), expected at least "
            f"{min_sparse_tensors}: the converter encodes a kernel sparse only when most of it is zero. "
            "Prune the 1x1 convolutions further (kdtf.compress.prune(model, sparsity=0.75, policy='xnnpack'))."
        )
    return flatbuffer
