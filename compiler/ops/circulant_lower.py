"""How a block-circulant dense layer lowers to a `circulant` node (docs/fixed-point.md
"Block-circulant layers"): whether it does (the plan's `engine` option), the fixed-point FFT's
spectra, shifts and widths (kernels.circulant_mac.plan_circulant with the `[lower]` precision
options), and its weights in stream order after a flattened image. The FFT's measured accuracy
cost needs the golden executor: compiler/passes/lower_measure.py."""

from __future__ import annotations

import numpy as np

from compiler.errors import PassError
from compiler.ir import Node
from kernels.circulant_mac import circulant_vectors, plan_circulant
from kernels.stream_order import stream_weight_matrix


def circulant_block(node: Node, engine: str) -> int | None:
    """The block size of a layer to lower as a `circulant` node, or None (a `dense` node): the
    plan's `engine` option dense or sparse asks for its exact product on that engine instead."""
    block = int(node.annotations.get("block_size", 1))
    if block <= 1 or engine in ("dense", "sparse"):
        return None  # not circulant, or the recipe asks for the exact product on another engine
    return block


def plan_circulant_layer(node: Node, w_q: np.ndarray, b_q: np.ndarray, block: int, in_bits: int, opts: dict):
    """Spectra, shifts and widths of a block-circulant layer (kernels.circulant_mac.plan_circulant)."""
    n_out, n_in = w_q.shape
    try:
        vectors = circulant_vectors(w_q, block)
    except ValueError:
        raise PassError(
            f"lower: layer {node.name!r} was made block-circulant (block size {block}) but its "
            "weights are no longer: a pass after circulant changed them (admm? run it before "
            "circulant, giving that layer block_size = 1)"
        ) from None
    guard = None if opts["fft_guard"] == "auto" else opts["fft_guard"]
    try:
        return plan_circulant(
            vectors,
            b_q,
            n_in,
            n_out,
            in_bits=in_bits,
            twiddle_frac=opts["twiddle_frac"],
            spectrum_bits=opts["spectrum_bits"],
            fft_guard=guard,
            ifft_guard=opts["ifft_guard"],
        )
    except ValueError as e:
        raise PassError(f"lower: circulant layer {node.name!r}: {e}") from None


def lower_circulant(lowering, node: Node, inputs: list, attrs: dict, quantized: tuple, block: int, opts: dict) -> int:
    """The `circulant` node's spectra (params and inputs 3, 4) and attrs; its accumulator width."""
    w_q, b_q = quantized
    layer = plan_circulant_layer(node, w_q, b_q, block, lowering.cur_fmt.bits, opts)
    inputs += [f"{node.name}.spectra_re", f"{node.name}.spectra_im"]
    lowering.params[inputs[3]], lowering.params[inputs[4]] = layer.spectra_re, layer.spectra_im
    attrs["circulant"] = layer.attrs()
    return layer.acc_bits


def stream_order_input(lowering, node: Node, chw: list[int], weight: str, w_q: np.ndarray) -> np.ndarray:
    """A block-circulant layer after a flatten of a [C, H, W] image the hardware streams
    channel-last: the `circulant` pass made its stream-order matrix block-circulant
    (annotations["circulant"]["input_chw"]), so the integer flatten emits the channel-last
    order (attr `order` = "hwc") and the layer stores its columns in that order: the same
    products, and a weight matrix the FFT engine takes as it is."""
    made = node.annotations.get("circulant", {}).get("input_chw")
    if made is None or list(made) != list(chw):
        how = "in the graph's row-major column order" if made is None else f"for a {list(made)} image"
        raise PassError(
            f"lower: layer {node.name!r} was made block-circulant {how}, but reads a flattened "
            f"{chw} image, which the hardware streams channel-last: run the circulant pass on this "
            "graph again (it defines the structure in stream order), or give the layer block_size = 1"
        )
    assert lowering.flatten_node is not None
    lowering.flatten_node.attrs["order"] = "hwc"
    w_s = stream_weight_matrix(w_q, chw)
    lowering.params[weight] = w_s.astype(np.int32)
    return w_s
