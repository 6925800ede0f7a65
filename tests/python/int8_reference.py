"""NumPy oracles of the int8 pipeline (seisoku/int8.hpp), shared by the int8 tests: scales,
codes and the fused epilogue, each step rounded in float32 as documented."""

from __future__ import annotations

import numpy as np


def ref_scale(max_abs: float) -> np.float32:
    """max_abs / 127 rounded once to float32 (1 for 0)."""
    return np.float32(1.0) if max_abs == 0 else np.float32(np.float64(max_abs) / 127.0)


def ref_codes(x: np.ndarray, scale) -> np.ndarray:
    """clamp(rint(x * (1 / scale)), -127, 127), every step in float32 (ties to even)."""
    inv = np.float32(1.0) / np.float32(scale)
    return np.clip(np.rint(x.astype(np.float32) * inv), -127, 127).astype(np.int8)


def ref_weight(w: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    w = w.astype(np.float32)
    if per_channel:
        scales = np.array([ref_scale(float(np.abs(r).max())) for r in w], np.float32)
        codes = np.stack([ref_codes(r, s) for r, s in zip(w, scales, strict=True)])
    else:
        scales = np.array([ref_scale(float(np.abs(w).max()))], np.float32)
        codes = ref_codes(w, scales[0])
    return codes, scales


def ref_linear(xq, x_scale, codes, scales, bias, relu) -> np.ndarray:
    """The documented epilogue: float(acc) * float32(x_scale * scale[o]) + bias[o], then ReLU."""
    acc = xq.astype(np.int64) @ codes.astype(np.int64).T
    m = np.float32(x_scale) * np.broadcast_to(scales, (codes.shape[0],)).astype(np.float32)
    y = acc.astype(np.float32) * m
    if bias is not None:
        y = y + bias.astype(np.float32)
    return np.where(y > 0, y, np.float32(0)) if relu else y


def random_codes(rng, shape) -> np.ndarray:
    return rng.integers(-127, 128, size=shape).astype(np.int8)
