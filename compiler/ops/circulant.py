"""circulant: a block-circulant dense layer computed by fixed-point FFTs (docs/fixed-point.md
"Block-circulant layers"; kernels.circulant_mac). Its inputs: x, the integer weight matrix
(exactly block-circulant), the bias and the stored weight spectra (real, imaginary); it outputs
an accumulator at the dense layer's scale, as dense does. The float op it comes from is `dense`
(compiler/ops/circulant_lower.py)."""

from __future__ import annotations

import numpy as np

from compiler.ir import Graph, Node
from compiler.ops.base import Op, register
from compiler.ops.dense import dense_golden
from kernels.circulant_mac import CirculantLayer, bit_reverse, circulant_mac, circulant_vectors, rebuild_circulant
from kernels.circulant_mac import twiddles as fft_twiddles


def circulant_layer(graph: Graph, node: Node) -> CirculantLayer:
    """The kernel's layer of a `circulant` node, from its stored integers: the spectra are not
    recomputed, and widths that disagree with the node's attrs are refused (ValueError)."""
    attrs = node.attrs["circulant"]
    w_q = graph.params[node.inputs[1]].astype(np.int64)
    return rebuild_circulant(
        attrs,
        graph.params[node.inputs[3]],
        graph.params[node.inputs[4]],
        circulant_vectors(w_q, attrs["block"]),
        graph.params[node.inputs[2]],
    )


@register
class Circulant(Op):
    name = "circulant"
    layer = True
    gradient_params = slice(2, 5)  # bias, spectra (real, imaginary): what the FFT reads

    def golden(self, graph, node, xs):
        return circulant_mac(xs[0], circulant_layer(graph, node))

    def golden_exact(self, graph, node, xs):
        return dense_golden(graph, node, xs[0])

    def stand_in(self, graph, node, xs, params, values):
        """The product of the stored spectra by float FFTs, times 2**-spectrum_frac (what the
        fixed-point FFT approximates)."""
        import torch
        from torch.nn import functional as F

        x = xs[0]
        a = node.attrs["circulant"]
        b, p, q = a["block"], a["p"], a["q"]
        padded = F.pad(x, (0, q * b - x.shape[1]))
        x_spec = torch.fft.rfft(padded.reshape(len(x), q, b), dim=-1)  # [N, q, H]
        w_spec = torch.complex(params[node.inputs[3]], params[node.inputs[4]])  # [p, q, H]
        y = torch.fft.irfft(torch.einsum("nqk,pqk->npk", x_spec, w_spec), n=b, dim=-1)
        return y.reshape(len(x), p * b)[:, : a["n_out"]] * 2.0 ** -a["spectrum_frac"] + params[node.inputs[2]]

    def emit(self, b, graph, node, xs):
        return _emit(b, graph, node, xs[0])


def _emit(b, g: Graph, node: Node, x: str) -> str:
    """The fixed-point FFT step by step and exactly in int64 (backends/onnx.py's docstring)."""
    from onnx import TensorProto

    from compiler.ops.onnx_util import acc_type, rshift_round, slice_

    layer = circulant_layer(g, node)
    n, (p, q) = layer.block, layer.grid
    half = n // 2 + 1
    name = node.outputs[0]
    # 1. forward FFT of each zero-padded input block, times 2**G
    xf = b.op("Cast", [x], f"{name}__x64", to=TensorProto.INT64)
    if q * n > layer.n_in:
        xf = b.op("Pad", [xf, b.const([0, 0, 0, q * n - layer.n_in], np.int64, "pads")], f"{name}__pad")
    xf = b.op("Mul", [xf, b.const(1 << layer.fft_guard, np.int64, "guard")], f"{name}__guard")
    x_re = b.op("Reshape", [xf, b.const([0, q, n], np.int64, "shape")], f"{name}__blocks")
    x_im = b.op("Mul", [x_re, b.const(0, np.int64, "zero")], f"{name}__zeros")
    x_re, x_im = _fft(b, x_re, x_im, q, n, layer.twiddle_frac, False, f"{name}__fwd")
    # 2. spectral products, bins 0..b/2, summed over input blocks: one [N, q] x [q, p] per bin
    bins = lambda t, part: b.op(
        "Transpose", [slice_(b, t, 2, 0, half, f"{name}__{part}_bins")], f"{name}__{part}_hnq", perm=[2, 0, 1]
    )  # [H, N, q]
    xr, xi = bins(x_re, "xr"), bins(x_im, "xi")
    w_re = b.const(layer.spectra_re.transpose(2, 1, 0), np.int64, "spectra_re")  # [H, q, p]
    w_im = b.const(layer.spectra_im.transpose(2, 1, 0), np.int64, "spectra_im")
    mm = lambda a, w, k: b.op("MatMul", [a, w], f"{name}__mm_{k}")
    s_re = b.op("Sub", [mm(xr, w_re, "rr"), mm(xi, w_im, "ii")], f"{name}__s_re")
    s_im = b.op("Add", [mm(xr, w_im, "ri"), mm(xi, w_re, "ir")], f"{name}__s_im")
    # 3. rounded by R, back to [N, p, H], mirrored to the full spectrum of a real signal
    v = {}
    for part, t in (("re", s_re), ("im", s_im)):
        t = rshift_round(b, t, layer.spectral_shift, f"{name}__v_{part}")
        v[part] = b.op("Transpose", [t], f"{name}__v_{part}_nph", perm=[1, 2, 0])
    if n > 2:
        mirror = b.const(np.arange(n // 2 - 1, 0, -1), np.int64, "mirror")
        m_re = b.op("Gather", [v["re"], mirror], f"{name}__m_re", axis=2)
        m_im = b.op("Neg", [b.op("Gather", [v["im"], mirror], f"{name}__m_im", axis=2)], f"{name}__m_conj")
        v["re"] = b.op("Concat", [v["re"], m_re], f"{name}__full_re", axis=2)
        v["im"] = b.op("Concat", [v["im"], m_im], f"{name}__full_im", axis=2)
    # 4. inverse FFT; 5. real part rounded by Gy, rows < n_out, plus bias
    y_re, _ = _fft(b, v["re"], v["im"], p, n, layer.twiddle_frac, True, f"{name}__inv")
    y = b.op("Reshape", [y_re, b.const([0, p * n], np.int64, "shape")], f"{name}__rows")
    if p * n > layer.n_out:
        y = slice_(b, y, 1, 0, layer.n_out, f"{name}__crop")
    y = rshift_round(b, y, layer.ifft_guard, f"{name}__acc")
    y = b.op("Add", [y, b.const(g.params[node.inputs[2]], np.int64, "bias")], f"{name}__biased")
    return b.op("Cast", [y], f"{name}__acc", to=acc_type(g, name))  # int32, or int64 if acc_bits > 32


def _fft(b, re: str, im: str, rows: int, n: int, twiddle_frac: int, inverse: bool, name: str) -> tuple[str, str]:
    """kernels.circulant_mac.fft_fixed over the last axis of [N, rows, n] int64 tensors."""
    from compiler.ops.onnx_util import rshift_round, slice_

    order = b.const(bit_reverse(n), np.int64, "bitrev")
    re = b.op("Gather", [re, order], f"{name}__rev_re", axis=2)
    im = b.op("Gather", [im, order], f"{name}__rev_im", axis=2)
    cos_q, sin_q = fft_twiddles(n, twiddle_frac)
    if not inverse:
        sin_q = -sin_q
    stages = n.bit_length() - 1
    for s in range(1, stages + 1):
        half = 1 << (s - 1)
        groups = n // (2 * half)
        tag = f"{name}__s{s}"
        shape = b.const([0, rows, groups, 2, half], np.int64, "shape")
        parts = {}
        for part, t in (("re", re), ("im", im)):
            t = b.op("Reshape", [t, shape], f"{tag}_{part}_grp")
            for k, pos in (("a", 0), ("c", 1)):
                parts[k + part] = slice_(b, t, 3, pos, pos + 1, f"{tag}_{k}{part}")
        wr = b.const(cos_q[np.arange(half) * groups], np.int64, "tw_re")
        wi = b.const(sin_q[np.arange(half) * groups], np.int64, "tw_im")
        mul = lambda x, w, k, tag=tag: b.op("Mul", [x, w], f"{tag}_{k}")
        tr = b.op("Sub", [mul(parts["cre"], wr, "rr"), mul(parts["cim"], wi, "ii")], f"{tag}_tr")
        ti = b.op("Add", [mul(parts["cim"], wr, "ir"), mul(parts["cre"], wi, "ri")], f"{tag}_ti")
        tr = rshift_round(b, tr, twiddle_frac, f"{tag}_tr")
        ti = rshift_round(b, ti, twiddle_frac, f"{tag}_ti")
        out = {}
        for part, t in (("re", tr), ("im", ti)):
            top = rshift_round(b, b.op("Add", [parts["a" + part], t], f"{tag}_{part}_sum"), 1, f"{tag}_{part}_top")
            bot = rshift_round(b, b.op("Sub", [parts["a" + part], t], f"{tag}_{part}_dif"), 1, f"{tag}_{part}_bot")
            cat = b.op("Concat", [top, bot], f"{tag}_{part}_cat", axis=3)
            out[part] = b.op("Reshape", [cat, b.const([0, rows, n], np.int64, "shape")], f"{tag}_{part}")
        re, im = out["re"], out["im"]
    return re, im
