"""The engines' hardware cost model: ROM bits and cycles, from the formulas in rtl/'s headers.

One place for these numbers: `lower` uses them to choose an engine per layer, the Verilog
backend and the report quote them, and simulation checks the cycle formulas. Chains of
dense, sparse and circulant engines have closed-form latency and interval (design_latency,
design_interval); once a line-buffered conv/pool engine is in the chain, pipeline_cycles
replays every engine's documented control edge by edge (compiler/timing.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compiler import timing
from kernels.sparse_mac import SparseEncoding, best_delta_bits, encode_sparse, sparse_rom_bits

PIPELINE_EDGES = 3  # ROM read, products, accumulate/output register (rtl/dense_mac.v)


@dataclass(frozen=True)
class EngineCost:
    engine: str
    rom_bits: int          # weights (+ indices, or spectra + twiddles) + bias
    compute_cycles: int    # dense/sparse: ROM words read per inference, one per cycle, no bubbles;
                           # circulant: cycles from the end of loading to the last output
    latency: int           # first input accepted -> last output, engine idle and never stalled
    interval: int          # steady-state cycles between inferences, inputs arriving one per cycle
    tail: int = 0          # last input accepted -> last output, engine idle and never stalled
    weight_rom_bits: int = 0   # rom_bits without the bias ROM
    output_span: int = 0   # first -> last output of a vector, once its first output is ready and
                           # nothing stalls (how long a downstream engine's loading lasts)


def dense_cost(n_in: int, n_out: int, multipliers: int, w_bits: int, bias_bits: int) -> EngineCost:
    words = n_out * math.ceil(n_in / multipliers)
    rom = words * multipliers * w_bits + n_out * bias_bits
    return EngineCost("dense", rom, words, n_in + words + PIPELINE_EDGES, max(n_in, words),
                      tail=words + PIPELINE_EDGES + 1, weight_rom_bits=words * multipliers * w_bits,
                      output_span=(n_out - 1) * math.ceil(n_in / multipliers))


def sparse_cost(enc: SparseEncoding, w_bits: int, bias_bits: int) -> EngineCost:
    words = int(enc.row_words.sum())
    rom = sparse_rom_bits(enc, w_bits) + enc.n_out * bias_bits
    return EngineCost("sparse", rom, words, enc.n_in + words + PIPELINE_EDGES, max(enc.n_in, words),
                      tail=words + PIPELINE_EDGES + 1, weight_rom_bits=sparse_rom_bits(enc, w_bits),
                      output_span=int(enc.row_words[1:].sum()))


# ---- the circulant engine (rtl/circulant_mac.v) ----------------------------------------------
CIRCULANT_MULTIPLIERS = 4   # one shared complex multiplier


def circulant_schedule(n_in: int, n_out: int, block: int) -> dict:
    """The cycle terms of rtl/circulant_mac.v's header (L = log2 b, H = b/2 + 1, Q input and P
    output blocks): each input block costs b (fill) + L*b/2 (butterflies) + H (store spectrum),
    each output block Q*H + 1 (spectral MACs) + L*b/2 (butterflies) + its outputs."""
    stages = block.bit_length() - 1
    if block < 2 or block & (block - 1):
        raise ValueError(f"a circulant block size must be a power of two >= 2, got {block}")
    half = block // 2 + 1
    p, q = -(-n_out // block), -(-n_in // block)
    per_in = block + stages * block // 2 + half
    per_out = q * half + 1 + stages * block // 2
    return {"p": p, "q": q, "stages": stages, "bins": half, "per_input_block": per_in,
            "per_output_block": per_out, "forward": q * per_in, "inverse": p * per_out}


def circulant_output_edge(n_in: int, n_out: int, block: int, o: int) -> int:
    """Cycles from the first input to output o's handshake (inputs one per cycle, out_ready high):
    N_IN + Q*(b + L*b/2 + H) + (i+1)*(Q*H + 1 + L*b/2) + i*b + n + 1, i = o // b, n = o % b."""
    s = circulant_schedule(n_in, n_out, block)
    i, n = divmod(o, block)
    return n_in + s["forward"] + (i + 1) * s["per_output_block"] + i * block + n + 1


def circulant_multiplies(n_in: int, n_out: int, block: int) -> int:
    """Real multiplies per inference: 4 per butterfly ((P + Q) FFTs of L*b/2 butterflies) and per
    spectral product (P*Q*(b/2 + 1)), against n_in * n_out for the dense product."""
    s = circulant_schedule(n_in, n_out, block)
    butterflies = (s["p"] + s["q"]) * s["stages"] * block // 2
    return CIRCULANT_MULTIPLIERS * (butterflies + s["p"] * s["q"] * s["bins"])


def circulant_rom_bits(n_in: int, n_out: int, block: int, spectrum_bits: int, twiddle_frac: int) -> dict:
    """Weight spectra (P*Q*(b/2+1) words of 2*SB bits) and twiddles (b/2 words of 2*(T+2) bits)."""
    s = circulant_schedule(n_in, n_out, block)
    return {"spectra": s["p"] * s["q"] * s["bins"] * 2 * spectrum_bits,
            "twiddles": (block // 2) * 2 * (twiddle_frac + 2)}


def circulant_cost(n_in: int, n_out: int, block: int, spectrum_bits: int, twiddle_frac: int,
                   bias_bits: int) -> EngineCost:
    """The circulant engine: one input buffer (it loads only between vectors), so its interval is
    its whole latency N_IN + Q*(b + L*b/2 + H) + P*(Q*H + 1 + L*b/2) + N_OUT."""
    s = circulant_schedule(n_in, n_out, block)
    rom = circulant_rom_bits(n_in, n_out, block, spectrum_bits, twiddle_frac)
    weights = rom["spectra"] + rom["twiddles"]
    compute = s["forward"] + s["inverse"] + n_out
    last_block = (n_out - 1) // block
    span = circulant_output_edge(n_in, n_out, block, n_out - 1) - circulant_output_edge(n_in, n_out, block, 0)
    assert span == last_block * (s["per_output_block"] + block) + (n_out - 1) % block
    return EngineCost("circulant", weights + n_out * bias_bits, compute, n_in + compute, n_in + compute,
                      tail=compute + 1, weight_rom_bits=weights, output_span=span)


def sparse_encoding(w_q: np.ndarray, multipliers: int, w_bits: int) -> SparseEncoding:
    return encode_sparse(w_q, multipliers, best_delta_bits(w_q, multipliers, w_bits))


def break_even_sparsity(enc: SparseEncoding, w_q: np.ndarray, w_bits: int) -> float:
    """Sparsity below which the sparse engine's ROM would exceed the dense one's, at this
    layer's measured cost per stored entry (value + index + padding)."""
    nonzeros = max(1, int(np.count_nonzero(w_q)))
    bits_per_nonzero = sparse_rom_bits(enc, w_bits) / nonzeros
    return float(max(0.0, 1.0 - w_bits / bits_per_nonzero))


def design_latency(first_n_in: int, costs: list[EngineCost]) -> int:
    """Cycles from the first input beat to the output beat, through an empty pipeline: the
    first layer loads its inputs (first_n_in - 1 edges after the first), each layer's last
    output is its `tail` after its last input (which is the previous layer's last output), and
    argmax registers the result (one edge)."""
    return first_n_in + sum(c.tail for c in costs)


def design_interval(first_n_in: int, costs: list[EngineCost], n_classes: int) -> int:
    """Steady-state cycles between inferences: the slowest stage (argmax takes N + 1).

    A dense/sparse engine double-buffers its input, so its stage takes its compute cycles. A
    circulant engine loads only between vectors, and while it computes, the engine upstream
    holds its next first output; so its stage takes its loading, which lasts as long as the
    upstream's output span (its own n_in - 1 edges for the first layer, fed by the host one
    input per cycle), plus one edge, plus its compute cycles."""
    stages = [first_n_in, n_classes + 1]
    for k, c in enumerate(costs):
        if c.engine == "circulant":
            loading = costs[k - 1].output_span if k else 0
            stages.append(max(c.interval - c.compute_cycles - 1, loading) + 1 + c.compute_cycles)
        else:
            stages.append(c.compute_cycles)
    return max(stages)


# ---- convolution and pooling engines (rtl/conv2d.v, rtl/pool2d.v) ---------------------------
def conv_kernel_steps(kernel, p_k: int = 1) -> int:
    """NKS = ceil(KH*KW / P_K): reads that cover the kernel positions, P_K at a time (rtl/conv2d.v)."""
    return math.ceil(kernel[0] * kernel[1] / p_k)


def conv_compute_cycles(in_shape, c_out: int, kernel, stride: int, pads, p_co: int, p_ci: int, p_k: int = 1) -> int:
    """ROM words read per frame, one per edge: H_OUT*W_OUT*NCG*NKS*NCW (rtl/conv2d.v)."""
    return conv_stage(in_shape, c_out, kernel, stride, pads, p_co, p_ci, p_k).compute_cycles


def conv_weight_rom_bits(in_shape, c_out: int, kernel, p_co: int, p_ci: int, w_bits: int, p_k: int = 1) -> int:
    """NCG*NKS*NCW words of P_CO*P_K*P_CI weights (kernels/conv_rom.py: zero-padded groups and steps)."""
    words = math.ceil(c_out / p_co) * conv_kernel_steps(kernel, p_k) * math.ceil(in_shape[0] / p_ci)
    return words * p_co * p_k * p_ci * w_bits


def pool_compute_cycles(in_shape, kernel, stride: int, pads) -> int:
    """One window element per edge: H_OUT*W_OUT*C*KH*KW (rtl/pool2d.v)."""
    return pool_stage(in_shape, kernel, stride, pads).compute_cycles


def stream_weight_matrix(w_q: np.ndarray, input_chw) -> np.ndarray:
    """A dense layer's weights with columns in the order its engine receives inputs.

    Convolution and pooling engines stream a [C, H, W] tensor channel-last (for y, for x, for c),
    while the graph's flatten is row-major C*H*W; so the dense layer after a flatten of a 4-D
    tensor (node attr `input_chw`) stores W_hw[:, (y*W + x)*C + c] = W[:, c*H*W + y*W + x]."""
    if not input_chw:
        return w_q
    c, h, w = input_chw
    n_out = w_q.shape[0]
    return w_q.reshape(n_out, c, h, w).transpose(0, 2, 3, 1).reshape(n_out, c * h * w)


def stream_reorders(chw) -> bool:
    """Whether the channel-last stream order of a [C, H, W] image differs from row-major C*H*W."""
    c, h, w = chw
    return c > 1 and h * w > 1


# Stages of the edge-by-edge timing model (compiler/timing.py), one per engine kind.
def conv_stage(in_shape, c_out: int, kernel, stride: int, pads, p_co: int, p_ci: int,
               p_k: int = 1) -> timing.LineStage:
    c_in, h, w = (int(d) for d in in_shape)
    return timing.LineStage("conv", c_in, h, w, int(c_out), int(kernel[0]), int(kernel[1]), int(stride),
                            tuple(int(p) for p in pads), int(p_co), int(p_ci), int(p_k))


def pool_stage(in_shape, kernel, stride: int, pads) -> timing.LineStage:
    c, h, w = (int(d) for d in in_shape)
    return timing.LineStage("pool", c, h, w, c, int(kernel[0]), int(kernel[1]), int(stride),
                            tuple(int(p) for p in pads), 1, c)


def dense_stage(n_in: int, n_out: int, multipliers: int) -> timing.RomStage:
    return timing.RomStage(n_in, (math.ceil(n_in / multipliers),) * n_out)


def sparse_stage(enc: SparseEncoding) -> timing.RomStage:
    return timing.RomStage(enc.n_in, tuple(int(w) for w in enc.row_words))


def circulant_stage(n_in: int, n_out: int, block: int) -> timing.CirculantStage:
    s = circulant_schedule(n_in, n_out, block)
    return timing.CirculantStage(n_in, n_out, block, s["forward"], s["per_output_block"])


LINE_FRAMES = 3   # a line-buffered engine alone, fed at full rate, is periodic from its second frame


def _line_cost(engine: str, stage: timing.LineStage, compute: int, rom_bits: int, weight_bits: int) -> EngineCost:
    """Latency, interval, tail and output span of one line-buffered engine alone (inputs one
    per cycle, out_ready high), by the timing model of its RTL header."""
    run = timing.run_stream((stage,), None, LINE_FRAMES)
    return EngineCost(engine, rom_bits, compute, run.latency, timing.steady_interval(run),
                      tail=run.outputs[0] - run.last_inputs[0], weight_rom_bits=weight_bits,
                      output_span=run.outputs[0] - run.first_outputs[0])


def conv_cost(stage: timing.LineStage, w_bits: int, bias_bits: int) -> EngineCost:
    """rtl/conv2d.v: weight ROM NCG*NKS*NCW words of P_CO*P_K*P_CI weights, bias ROM NCG words of
    P_CO biases (both zero-padded to whole groups)."""
    s = stage
    in_shape = (s.c_in, s.h, s.w)
    weights = conv_weight_rom_bits(in_shape, s.c_out, (s.kh, s.kw), s.p_co, s.p_ci, w_bits, s.p_k)
    bias = s.groups * s.p_co * bias_bits
    return _line_cost("conv", s, s.compute_cycles, weights + bias, weights)


def pool_cost(stage: timing.LineStage) -> EngineCost:
    """rtl/pool2d.v: no ROM, one window element per cycle."""
    return _line_cost("pool", stage, stage.compute_cycles, 0, 0)


def pipeline_cycles(stages: list, n_classes: int, frames: int = timing.STEADY_FRAMES) -> tuple[int, int]:
    """(latency, steady-state interval) of a whole design by the edge-by-edge model: what
    sim/test_design.py measures (first sample through an empty pipeline; then back to back).

    For designs of dense, sparse and circulant engines only this equals design_latency and
    design_interval; with line-buffered engines, whose loading overlaps their compute and
    which back-pressure each other, there is no closed form."""
    run = timing.run_stream(tuple(stages), n_classes, frames)
    return run.latency, timing.steady_interval(run)
