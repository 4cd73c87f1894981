"""The quantized weight format: packing, scales, and the round trip."""

from __future__ import annotations

import numpy as np
import pytest

from wsd_artifacts import ArtifactError
from wsd_artifacts.quantization import (
    SCHEMES,
    dequantize_weight,
    quantizable,
    quantize_weight,
    reference_weight,
    scale_shape,
)


def _weight(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.05


@pytest.mark.parametrize("name", ["int8", "int4"])
@pytest.mark.parametrize(
    ("shape", "pack_axis", "out_axis"), [((64, 48), 0, 1), ((16, 64, 3, 3), 1, 0), ((8, 32), 1, 0)]
)
def test_a_weight_comes_back_within_half_a_step(
    name: str, shape: tuple[int, ...], pack_axis: int, out_axis: int
) -> None:
    q = SCHEMES[name]
    w = _weight(shape)
    packed, scales = quantize_weight(w, q, pack_axis=pack_axis, out_axis=out_axis)
    assert packed.dtype == np.uint32
    expected_packed = list(shape)
    expected_packed[pack_axis] //= q.per_word
    assert list(packed.shape) == expected_packed
    assert scales.dtype == np.float16
    assert list(scales.shape) == scale_shape(shape, q, pack_axis, out_axis)
    back = dequantize_weight(packed, scales, q, pack_axis=pack_axis, dtype="float32")
    assert back.shape == w.shape
    step = np.broadcast_to(
        np.repeat(scales.astype(np.float32), shape[pack_axis] // scales.shape[pack_axis], pack_axis)
        if scales.shape[pack_axis] > 1
        else scales.astype(np.float32),
        shape,
    )
    assert np.all(np.abs(back - w) <= step / 2 + 1e-7)
    # The largest magnitude of every group is a whole number of steps: the top level.
    assert np.abs(back).max() == pytest.approx(np.abs(w).max(), rel=2e-3)


def test_quantization_is_deterministic_and_int8_is_finer_than_int4() -> None:
    w = _weight((128, 64), seed=1)
    for q in SCHEMES.values():
        a = quantize_weight(w, q, pack_axis=0, out_axis=1)
        b = quantize_weight(w.copy(), q, pack_axis=0, out_axis=1)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    err = {
        name: np.abs(reference_weight(w, q, pack_axis=0, out_axis=1, dtype="float32") - w).mean()
        for name, q in SCHEMES.items()
    }
    assert err["int8"] < err["int4"] / 4


def test_the_packed_layout_is_offset_levels_lowest_bits_first() -> None:
    q = SCHEMES["int4"]
    w = np.zeros((1, 32), np.float32)
    w[0, :8] = [7, -7, 0, 1, 2, 3, -1, 6]
    packed, scales = quantize_weight(w, q, pack_axis=1, out_axis=0)
    assert scales.tolist() == [[1.0]]
    levels = [7, -7, 0, 1, 2, 3, -1, 6]
    assert int(packed[0, 0]) == sum((v + 8) << (4 * i) for i, v in enumerate(levels))
    assert int(packed[0, 1]) == sum(8 << (4 * i) for i in range(8))  # zeros


def test_an_all_zero_weight_and_fp16_weights_round_trip() -> None:
    q = SCHEMES["int8"]
    zero = np.zeros((4, 8), np.float16)
    assert np.array_equal(reference_weight(zero, q, pack_axis=1, out_axis=0, dtype="float16"), zero)
    w = _weight((4, 8)).astype(np.float16)
    back = reference_weight(w, q, pack_axis=1, out_axis=0, dtype="float16")
    assert back.dtype == np.float16
    assert np.abs(back.astype(np.float32) - w.astype(np.float32)).max() < 1e-3


def test_shapes_that_do_not_pack_are_refused() -> None:
    q = SCHEMES["int4"]
    assert not quantizable((4, 36), q, 1)  # 36 is not a multiple of the group (32)
    assert quantizable((4, 64), q, 1)
    refused = r"shape \[4, 36\] does not pack into int4 along axis 1"
    with pytest.raises(ArtifactError, match=refused):
        quantize_weight(_weight((4, 36)), q, pack_axis=1, out_axis=0)
    with pytest.raises(ArtifactError, match="too large"):
        quantize_weight(np.full((2, 8), 1e9, np.float32), SCHEMES["int8"], pack_axis=1, out_axis=0)
