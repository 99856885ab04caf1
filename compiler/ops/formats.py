"""The fixed-point formats lower chooses (docs/fixed-point.md): calibrated activation formats,
weight formats, accumulator widths, and the checks that refuse what no format of mpc can hold.

The lowering rules of the layer ops (dense, conv2d, circulant) and the lower pass's walk use
these; admm and mia_quant use `weight_format` (through compiler.passes.lower).
"""

from __future__ import annotations

import math

import numpy as np

import kernels
from compiler.errors import PassError
from compiler.ir import FixedPoint, Graph, Node

# FPGA DSP slices accumulate 48 bits. The ONNX backend computes a layer wider than 32 bits (where
# MatMulInteger / ConvInteger accumulate) in int64; lower narrows a layer's weights beyond this.
MAX_ACC_BITS = 48
# Every format's frac (weights, activations, accumulators) lies in -MAX_FRAC..MAX_FRAC: its step
# 2**-frac is exact in float32 (ONNX QuantizeLinear's scale) and every shift fits int64.
MAX_FRAC = 60
MAX_SHIFT = 62  # requantize shifts: 1 << shift must be an int64 (the integer ONNX graph)


def choose_format(values: np.ndarray, bits: int, max_frac: int | None = None) -> FixedPoint:
    """Power-of-two format for `values`: the covering format or one with up to 2 more fractional
    bits (clipping rare outliers), whichever has the least mean squared error."""
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    if peak == 0.0:
        f0 = bits - 1
    else:
        f0 = math.floor(math.log2(((1 << (bits - 1)) - 0.5) / peak))
    candidates = [f0, f0 + 1, f0 + 2]
    if max_frac is not None:
        candidates = sorted({min(f, max_frac) for f in candidates})
    sample = np.asarray(values, dtype=np.float32).ravel()
    errors = [
        float(np.mean((kernels.dequantize(kernels.quantize(sample, f, bits), f) - sample) ** 2)) if sample.size else 0.0
        for f in candidates
    ]
    return FixedPoint(bits, candidates[int(np.argmin(errors))])


def weight_format(w: np.ndarray, bits: int) -> FixedPoint:
    peak = float(np.max(np.abs(w), initial=0.0))
    frac = bits - 1 if peak == 0 else math.floor(math.log2(((1 << (bits - 1)) - 0.5) / peak))
    return FixedPoint(bits, frac)


def quant_format(graph: Graph, tensors: tuple[str, ...], max_frac: int | None = None) -> FixedPoint | None:
    """The activation format a QONNX Quant fixed for one of `tensors` (compiler/frontend/qonnx.py),
    instead of calibration; its frac capped at `max_frac` (a requantize never shifts left)."""
    fixed = graph.meta.get("qonnx", {}).get("activations", {})
    name = next((t for t in tensors if t in fixed), None)
    if name is None:
        return None
    fmt = FixedPoint.from_dict(fixed[name])
    return fmt if max_frac is None or fmt.frac <= max_frac else FixedPoint(fmt.bits, max_frac)


def frac_range(bits: int) -> tuple[float, float]:
    """The largest magnitudes a power-of-two format of `bits` covers with frac MAX_FRAC and
    -MAX_FRAC: a tensor's peak must lie between them."""
    top = (1 << (bits - 1)) - 0.5
    return top * 2.0 ** -(MAX_FRAC + 1), top * 2.0**MAX_FRAC


def checked_activation_format(values: np.ndarray, bits: int, what: str, max_frac: int | None = None) -> FixedPoint:
    """choose_format, refusing values no format of mpc can hold (NaN/Inf, or beyond 2**±MAX_FRAC steps)."""
    if values.size and not np.all(np.isfinite(values)):
        raise PassError(
            f"lower: {what}: the float model's values on the calibration data (x_train) reach NaN or Inf "
            "(weights or inputs too large for float32?)"
        )
    fmt = choose_format(values, bits, max_frac)
    if abs(fmt.frac) > MAX_FRAC:
        lo, hi = frac_range(bits)
        peak = float(np.max(np.abs(values)))
        raise PassError(
            f"lower: {what}: calibrated values up to {peak:.3g} need the format Q({bits}, {fmt.frac}); "
            f"mpc's formats have |frac| <= {MAX_FRAC}, so a tensor's largest value must lie in "
            f"[{lo:.3g}, {hi:.3g}] (rescale the model or the data)"
        )
    return fmt


def check_finite(node: Node, w: np.ndarray, b: np.ndarray | None) -> None:
    for what, v in (("weights", w), ("biases", b)):
        if v is not None and not np.all(np.isfinite(v)):
            raise PassError(f"lower: layer {node.name!r}: its {what} contain NaN or Inf")


def check_layer_scale(node: Node, w: np.ndarray, b: np.ndarray | None, w_fmt: FixedPoint, x_fmt: FixedPoint) -> None:
    """The layer's weights and biases must fit the formats mpc has: a weight format with
    |frac| <= MAX_FRAC, an accumulator scale 2**-(w_frac + x_frac) within the same range, and
    biases at that scale within the MAX_ACC_BITS-bit accumulator."""
    peak = float(np.max(np.abs(w), initial=0.0))
    acc_frac = w_fmt.frac + x_fmt.frac
    if abs(w_fmt.frac) > MAX_FRAC:
        lo, hi = frac_range(w_fmt.bits)
        raise PassError(
            f"lower: layer {node.name!r}: its largest weight {peak:.3g} needs the format "
            f"Q({w_fmt.bits}, {w_fmt.frac}); mpc's formats have |frac| <= {MAX_FRAC}, so a layer's largest "
            f"weight must lie in [{lo:.3g}, {hi:.3g}] (rescale the model's weights)"
        )
    if abs(acc_frac) > MAX_FRAC:
        raise PassError(
            f"lower: layer {node.name!r}: weights in Q({w_fmt.bits}, {w_fmt.frac}) times inputs in "
            f"Q({x_fmt.bits}, {x_fmt.frac}) give an accumulator with steps of 2**{-acc_frac}; mpc's formats "
            f"have |frac| <= {MAX_FRAC} (largest weight {peak:.3g}: rescale the model's weights)"
        )
    b_peak = float(np.max(np.abs(b), initial=0.0)) if b is not None else 0.0
    limit = 2.0 ** (MAX_ACC_BITS - 1)
    if b_peak * 2.0**acc_frac >= limit - 0.5:
        raise PassError(
            f"lower: layer {node.name!r}: its largest bias {b_peak:.3g} does not fit the "
            f"{MAX_ACC_BITS}-bit accumulator at the layer's scale 2**{-acc_frac} (weights Q({w_fmt.bits}, "
            f"{w_fmt.frac}) times inputs Q({x_fmt.bits}, {x_fmt.frac})), which holds biases below "
            f"{(limit - 0.5) * 2.0**-acc_frac:.3g}: the biases are too large for the weights"
        )


def checked_acc_bits(node: Node, acc_bits: int) -> int:
    if acc_bits > MAX_ACC_BITS:
        raise PassError(
            f"lower: layer {node.name!r} needs a {acc_bits}-bit accumulator; at most "
            f"{MAX_ACC_BITS} are supported (use fewer weight/activation bits)"
        )
    return acc_bits


def acc_bits_bound(w_q: np.ndarray, b: np.ndarray | None, acc_frac: int, in_bits: int) -> int:
    """The accumulator width of docs/fixed-point.md (kernels.dense_accumulator_bits, per output
    row of a dense or conv weight) in float64, so that a bias far beyond int64 is measured, not
    wrapped: exact wherever it decides (below 2**53)."""
    rows = np.abs(np.asarray(w_q, dtype=np.float64)).reshape(len(w_q), -1).sum(axis=1)
    worst = rows * float(1 << (in_bits - 1))
    if b is not None:
        worst = worst + np.abs(np.rint(np.asarray(b, dtype=np.float64).reshape(-1) * 2.0**acc_frac))
    peak = float(np.max(worst, initial=0.0))
    return math.ceil(math.log2(peak + 1)) + 1


def quantize_weights(node: Node, w: np.ndarray, bits: int) -> tuple[np.ndarray, FixedPoint]:
    """Round weights onto Q(bits, f); keep admm's grid exactly where it set one."""
    fixed = node.annotations.get("weight_format")
    if fixed is not None:
        fmt = FixedPoint.from_dict(fixed)
        scaled = w.astype(np.float64) * 2.0**fmt.frac
        w_q = np.rint(scaled)
        if (
            np.max(np.abs(scaled - w_q), initial=0.0) > 1e-3
            or w_q.min(initial=0) < fmt.min_int
            or w_q.max(initial=0) > fmt.max_int
        ):
            raise PassError(
                f"lower: layer {node.name!r} claims weight format {fixed} but its weights are off that grid"
            )
        return w_q.astype(np.int64), fmt
    fmt = weight_format(w, bits)
    w_q = kernels.saturate(kernels.round_half_even(w.astype(np.float64) * 2.0**fmt.frac), bits)
    return w_q.astype(np.int64), fmt


def fit_accumulator(
    node: Node, w: np.ndarray, b: np.ndarray | None, w_q: np.ndarray, w_fmt: FixedPoint, x_fmt: FixedPoint
) -> tuple[np.ndarray, FixedPoint, dict | None]:
    """Narrower weights where the accumulator would exceed MAX_ACC_BITS: one weight bit fewer
    (one fractional bit fewer) at a time down to 2 bits, then coarser 2-bit steps, until it
    fits. Returns the weights, their format and what was narrowed (None: nothing; else the
    node's `narrowed` annotation for the report); refused when no weight would be left nonzero
    (the bias alone is too large) or a format leaves mpc's range."""
    need = acc_bits_bound(w_q, b, w_fmt.frac + x_fmt.frac, x_fmt.bits)
    if need <= MAX_ACC_BITS:
        return w_q, w_fmt, None
    first, fmt, q = need, w_fmt, w_q
    while need > MAX_ACC_BITS:
        nxt = weight_format(w, fmt.bits - 1) if fmt.bits > 2 else FixedPoint(2, fmt.frac - 1)
        fmt = nxt if nxt.frac < fmt.frac else FixedPoint(nxt.bits, fmt.frac - 1)
        q = kernels.saturate(kernels.round_half_even(w.astype(np.float64) * 2.0**fmt.frac), fmt.bits)
        if not np.any(q) or fmt.frac < -MAX_FRAC or fmt.frac + x_fmt.frac < -MAX_FRAC:
            check_layer_scale(node, w, b, w_fmt, x_fmt)  # names the bias, when it is the reason
            raise PassError(
                f"lower: layer {node.name!r} needs a {first}-bit accumulator; at most {MAX_ACC_BITS} are "
                "supported, and no narrower weight format leaves a nonzero weight (rescale the model)"
            )
        need = acc_bits_bound(q, b, fmt.frac + x_fmt.frac, x_fmt.bits)
    narrowed = {
        "needed_acc_bits": first,
        "max_acc_bits": MAX_ACC_BITS,
        "weight_format_from": w_fmt.to_dict(),
        "weight_format_to": fmt.to_dict(),
    }
    return q.astype(np.int64), fmt, narrowed
