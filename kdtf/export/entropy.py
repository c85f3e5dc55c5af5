"""Entropy-coded size of a ``.tflite``: what its weights take after entropy coding.

Deep Compression's last step (Han, Mao & Dally, "Deep Compression", ICLR 2016,
arXiv:1510.00149) codes the quantized weights with a variable-length code: pruning
(many zeros) and clustering (few distinct values) skew the value histogram, which an
entropy coder turns into bytes that gzip, working on byte strings, only partly finds.

Per weight tensor (:func:`kdtf.export.flatbuffer.weight_tensors`: constant int8, float16
or float32 tensors of rank >= 2), the values are the symbols:

* the **entropy bound** ``n * H / 8`` bytes, ``H = -sum_v p_v log2 p_v`` over the
  empirical frequencies ``p_v`` of the tensor's ``n`` values (Shannon, 1948): no code
  for i.i.d. symbols under this model does better;
* the **coded size**: the real length of :func:`encode_tensor`'s output, a header
  (the distinct values and their counts, which the decoder needs, counts in the narrowest of 1, 2 or 4 bytes) and the payload of
  ``constriction``'s range coder (Bamler, 2022) under the tensor's own empirical model.
  Where that is not smaller than the raw bytes, the tensor is stored raw: the coded
  size is never above the raw size.

:func:`decode_tensor` inverts :func:`encode_tensor` exactly (tests check the round trip).
"""

import os
import struct

import numpy as np

from kdtf.export.flatbuffer import read_flatbuffer, weight_tensors

__all__ = ["entropy_bound_bits", "encode_tensor", "decode_tensor", "coded_size", "entropy_coded_size", "size_fields", "CODER"]

CODER = "constriction range coder (queue), per-tensor empirical categorical model"
_HEADER = struct.Struct("<IIBB")  # values, distinct values, bytes per value, bytes per count


def entropy_bound_bits(values):
    """Shannon bound of ``values`` as i.i.d. symbols: ``n * H`` bits, ``H`` the entropy
    of their empirical distribution (``-sum_v p_v log2 p_v``); 0 for an empty array."""
    values = np.asarray(values).reshape(-1)
    if values.size == 0:
        return 0.0
    _, counts = np.unique(_as_symbols(values), return_counts=True)
    p = counts / values.size
    return float(-values.size * np.sum(p * np.log2(p)))


def _as_symbols(values):
    """Values as unsigned integers of their own width (so float values compare by bits:
    -0.0 and NaN payloads are symbols like any other)."""
    values = np.ascontiguousarray(values).reshape(-1)
    return values.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[values.dtype.itemsize])


def _count_width(n):
    return 1 if n < 2**8 else 2 if n < 2**16 else 4


def _model(counts):
    import constriction

    return constriction.stream.model.Categorical(counts.astype(np.float64) / counts.sum(), perfect=False)


def encode_tensor(values):
    """``values`` entropy-coded: header ``(n, k, itemsize, count width)``, the ``k``
    distinct values (their bytes), their ``k`` counts (unsigned, 1, 2 or 4 bytes: the
    narrowest that holds ``n``), then the range coder's uint32 words.

    Returns:
        ``bytes``; its length is the coded size (the raw size may be smaller: see
        :func:`coded_size`).
    """
    import constriction

    values = np.asarray(values)
    symbols = _as_symbols(values)
    distinct, index, counts = np.unique(symbols, return_inverse=True, return_counts=True)
    encoder = constriction.stream.queue.RangeEncoder()
    if len(distinct) > 1:  # one distinct value: the header says it all
        encoder.encode(index.astype(np.int32), _model(counts))
    payload = encoder.get_compressed().astype("<u4").tobytes()
    width = _count_width(symbols.size)
    header = _HEADER.pack(symbols.size, len(distinct), symbols.dtype.itemsize, width)
    counts = counts.astype(f"<u{width}").tobytes()
    return header + distinct.astype(distinct.dtype.newbyteorder("<")).tobytes() + counts + payload


def decode_tensor(blob, dtype):
    """Inverse of :func:`encode_tensor`: the flat array of ``dtype`` values."""
    import constriction

    n, k, itemsize, width = _HEADER.unpack_from(blob)
    dtype = np.dtype(dtype)
    if dtype.itemsize != itemsize:
        raise ValueError(f"Expected a dtype of {itemsize} bytes per value for this blob. Received: dtype={dtype}")
    start = _HEADER.size
    distinct = np.frombuffer(blob, dtype.newbyteorder("<"), k, start)
    counts = np.frombuffer(blob, f"<u{width}", k, start + k * itemsize).astype(np.int64)
    if k == 1:
        return np.repeat(distinct, n).astype(dtype)
    words = np.frombuffer(blob[start + k * (itemsize + width):], "<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    return distinct[decoder.decode(_model(counts), n)].astype(dtype)


def coded_size(values):
    """``(coded bytes, stored raw)`` of one tensor: the length of :func:`encode_tensor`'s
    output, or the raw size (and ``True``) where coding would not make it smaller. A
    tensor whose distinct-value table alone fills the raw size is not coded at all."""
    values = np.asarray(values)
    raw = values.nbytes
    if len(np.unique(_as_symbols(values))) * (values.dtype.itemsize + _count_width(values.size)) + _HEADER.size >= raw:
        return raw, True
    coded = len(encode_tensor(values))
    return (coded, False) if coded < raw else (raw, True)


def entropy_coded_size(flatbuffer_or_path, min_size=64):
    """The entropy-coded size of a ``.tflite``'s weights, per tensor and in total.

    Args:
        flatbuffer_or_path: a ``.tflite`` path or its bytes.
        min_size: weight tensors with fewer values are left out (as in
            :func:`kdtf.export.weight_sparsity`).

    Returns:
        A dict: ``tensors`` (``{name: {dtype, values, distinct, raw_bytes,
        entropy_bound_bytes, coded_bytes, stored_raw}}``), the totals over them
        ``weights_raw_bytes``, ``weights_entropy_bound_bytes``, ``weights_coded_bytes``,
        the ``file_bytes`` and ``coded_file_bytes`` (the file with its weights replaced by
        their coded form, everything else as is), and ``coder``.
    """
    data = read_flatbuffer(flatbuffer_or_path)
    tensors = {}
    for name, (values, _) in weight_tensors(data, min_size).items():
        coded, raw = coded_size(values)
        tensors[name] = {
            "dtype": values.dtype.name,
            "values": int(values.size),
            "distinct": int(len(np.unique(_as_symbols(values)))),
            "raw_bytes": int(values.nbytes),
            "entropy_bound_bytes": entropy_bound_bits(values) / 8.0,
            "coded_bytes": int(coded),
            "stored_raw": bool(raw),
        }
    raw = sum(t["raw_bytes"] for t in tensors.values())
    coded = sum(t["coded_bytes"] for t in tensors.values())
    return {
        "file": os.path.basename(os.fspath(flatbuffer_or_path)) if not isinstance(flatbuffer_or_path, (bytes, bytearray)) else None,
        "tensors": tensors,
        "weights_raw_bytes": raw,
        "weights_entropy_bound_bytes": sum(t["entropy_bound_bytes"] for t in tensors.values()),
        "weights_coded_bytes": coded,
        "file_bytes": len(data),
        "coded_file_bytes": len(data) - raw + coded,
        "coder": CODER,
    }


def size_fields(path):
    """What a report row or model card shows beside bytes and gzip: the file with its
    weights entropy-coded (``entropy_coded_bytes``) and at the Shannon bound
    (``entropy_bound_bytes``); ``None`` for a file that is not a ``.tflite``."""
    if not os.fspath(path).endswith(".tflite"):
        return {"entropy_coded_bytes": None, "entropy_bound_bytes": None}
    sizes = entropy_coded_size(path)
    bound = sizes["file_bytes"] - sizes["weights_raw_bytes"] + sizes["weights_entropy_bound_bytes"]
    return {"entropy_coded_bytes": sizes["coded_file_bytes"], "entropy_bound_bytes": round(bound, 1)}
