"""Entropy-coded size: the Shannon bound against numpy, the range coder's real output
(round trip, length), never above the raw bytes, and the totals of a real .tflite."""

import numpy as np
import pytest

from kdtf import export
from kdtf.export.entropy import coded_size, decode_tensor, encode_tensor, entropy_bound_bits, size_fields

RNG = np.random.default_rng(0)


def _pruned_int8(shape=(32, 3, 3, 16), zeros=0.75):
    values = np.clip(np.round(RNG.normal(0, 25, shape)), -127, 127).astype(np.int8)
    values[RNG.random(shape) < zeros] = 0
    return values


def test_entropy_bound_matches_a_numpy_histogram_and_hand_values():
    assert entropy_bound_bits(np.array([0, 0, 1, 1], np.int8)) == pytest.approx(4.0)  # 1 bit each
    assert entropy_bound_bits(np.array([5, 5, 5], np.int8)) == 0.0
    values = _pruned_int8()
    counts = np.bincount(values.reshape(-1).astype(np.int64) + 128)
    p = counts[counts > 0] / values.size
    assert entropy_bound_bits(values) == pytest.approx(-values.size * np.sum(p * np.log2(p)), rel=1e-12)
    clustered = RNG.choice(np.float32([-0.5, 0.0, 0.25, 1.0]), size=(40, 20), p=[0.1, 0.6, 0.2, 0.1])
    _, counts = np.unique(clustered, return_counts=True)
    p = counts / clustered.size
    assert entropy_bound_bits(clustered) == pytest.approx(-clustered.size * np.sum(p * np.log2(p)), rel=1e-12)


@pytest.mark.parametrize("values", [
    _pruned_int8(),
    RNG.choice(np.float32([-0.5, 0.0, 0.25, 1.0]), size=(40, 20)),
    np.zeros((16, 16), np.int8),
], ids=["pruned-int8", "clustered-float32", "constant"])
def test_coded_size_is_the_real_length_of_a_code_that_decodes_to_the_tensor(values):
    blob = encode_tensor(values)
    np.testing.assert_array_equal(decode_tensor(blob, values.dtype), values.reshape(-1))
    size, stored_raw = coded_size(values)
    assert not stored_raw and size == len(blob) < values.nbytes
    assert size * 8 >= entropy_bound_bits(values)  # header and coder overhead on top of the bound


def test_incompressible_tensors_are_counted_at_their_raw_size():
    uniform = RNG.integers(-128, 128, size=(64, 64)).astype(np.int8)  # ~8 bits of entropy per value
    assert len(encode_tensor(uniform)) > uniform.nbytes
    assert coded_size(uniform) == (uniform.nbytes, True)
    floats = RNG.normal(size=(30, 30)).astype(np.float32)  # every value distinct: not even coded
    assert coded_size(floats) == (floats.nbytes, True)


def test_entropy_coded_size_of_a_tflite_totals_its_weight_tensors(student, tmp_path):
    pruned = student
    for layer in pruned.layers:  # 80 % magnitude pruning by hand: no training needed for the sizes
        weights = layer.get_weights()
        if weights and weights[0].ndim >= 2:
            kernel = weights[0]
            kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.8)] = 0
            layer.set_weights([kernel] + weights[1:])
    path = tmp_path / "pruned.tflite"
    path.write_bytes(export.to_tflite(pruned, "int8", representative_data=RNG.random((16, 8, 8, 1)).astype(np.float32)))
    sizes = export.entropy_coded_size(str(path), min_size=1)
    tensors = export.weight_tensors(str(path), min_size=1)
    assert set(sizes["tensors"]) == set(tensors) and sizes["file_bytes"] == path.stat().st_size
    for name, row in sizes["tensors"].items():
        values = tensors[name][0]
        assert row["raw_bytes"] == values.nbytes and row["coded_bytes"] <= row["raw_bytes"]
        if not row["stored_raw"]:
            assert row["coded_bytes"] == len(encode_tensor(values))
    assert sizes["weights_coded_bytes"] == sum(r["coded_bytes"] for r in sizes["tensors"].values())
    assert sizes["weights_coded_bytes"] < sizes["weights_raw_bytes"]  # 80 % zeros: the coder gains
    assert sizes["coded_file_bytes"] == sizes["file_bytes"] - sizes["weights_raw_bytes"] + sizes["weights_coded_bytes"]
    fields = size_fields(str(path))
    assert fields["entropy_bound_bytes"] <= fields["entropy_coded_bytes"] < sizes["file_bytes"]
    assert size_fields(str(tmp_path / "model.keras")) == {"entropy_coded_bytes": None, "entropy_bound_bytes": None}


def test_entropy_coded_size_refuses_a_file_that_is_not_tflite_in_one_line(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        export.entropy_coded_size(str(bad))
    with pytest.raises(ValueError, match="not found"):
        export.entropy_coded_size(str(tmp_path / "missing.tflite"))
