"""The weight-ROM modes of the conv engine (rtl/conv2d.v): dense, block-circulant vectors
(CIRC_B) and depthwise (DEPTHWISE = 1): the ROM words and stored weights per word of each, and
the depthwise mode's node test, splits of the multipliers and weight ROM size.

A depthwise conv (attr `group` == C_in == C_out, weights [C, 1, kH, kW]; docs/ir.md) runs with
P_CI = P_CO: output-channel group g reads only its own channel word, so a group takes
G = NKS = ceil(kH*kW / P_K) reads; the weight ROM holds NCG*NKS words of P_CO*P_K weights
(kernels/conv_rom.py, depthwise_conv_rom_words) and P_CO*P_K multipliers work (the expanded
word's off-diagonal lanes are constant zero and synthesized away).
"""

from __future__ import annotations

import math

from compiler.ir import Node
from kernels.conv2d import conv_geometry
from kernels.conv_rom import circulant_conv_rom_words, conv_weight_rom_words, depthwise_conv_rom_words


def is_depthwise(node: Node) -> bool:
    """A conv with attr group > 1: in the IR only group == C_in == C_out (docs/ir.md)."""
    return int(node.attrs.get("group", 1)) > 1


def check_depthwise(node: Node) -> str | None:
    """Why a node with attr `group` cannot run on the engine, or None."""
    group, c_in, c_out = int(node.attrs.get("group", 1)), node.attrs["in_shape"][0], node.attrs["out_shape"][0]
    if group > 1 and not group == c_in == c_out:
        return f"group {group} is neither 1 nor depthwise (C_in = {c_in}, C_out = {c_out})"
    if group > 1 and "circulant" in node.attrs:
        return "a depthwise conv cannot be block-circulant"
    return None


def depthwise_weight_rom_bits(channels: int, kernel, p_co: int, w_bits: int, p_k: int = 1) -> int:
    """NCG*NKS words of P_CO*P_K weights (zero-padded groups and steps)."""
    return math.ceil(channels / p_co) * math.ceil(kernel[0] * kernel[1] / p_k) * p_co * p_k * w_bits


def depthwise_splits(node: Node, co_options: list[int], k_options: list[int]) -> list[tuple[int, int, int, int]]:
    """(P_CO, P_K, cycles per frame, weight ROM bits) of the splits the timing contract covers:
    P_CO <= G = NKS."""
    a = node.attrs
    c, positions, w_bits = a["in_shape"][0], a["kernel"][0] * a["kernel"][1], a["weight_format"]["bits"]
    splits = []
    for p_k in k_options:
        for p_co in (p for p in co_options if p <= math.ceil(positions / p_k)):
            geometry = conv_geometry(a["in_shape"], c, a["kernel"], a["stride"], a["pads"], p_co, p_co, p_k, True)
            splits.append(
                (p_co, p_k, geometry.compute_cycles, depthwise_weight_rom_bits(c, a["kernel"], p_co, w_bits, p_k))
            )
    return splits


def stored_lanes(parameters: dict) -> int:
    """Stored weights per weight-ROM word: P_CO*P_K*P_CI (/ CIRC_B; depthwise P_CO*P_K)."""
    p_co, p_ci, p_k = (parameters[k] for k in ("P_CO", "P_CI", "P_K"))
    return p_co * p_k * (1 if parameters.get("DEPTHWISE") else p_ci // (parameters.get("CIRC_B") or 1))


def weight_rom_words(w, parameters: dict, bits: int) -> list[int]:
    """The weight ROM of rtl/conv2d.v for its parameters (kernels/conv_rom.py) from w: the weights,
    or with CIRC_B the defining vectors."""
    p_co, p_ci, p_k = (parameters[k] for k in ("P_CO", "P_CI", "P_K"))
    if parameters.get("DEPTHWISE"):
        return depthwise_conv_rom_words(w, p_co, bits, p_k)
    if parameters.get("CIRC_B"):
        return circulant_conv_rom_words(w, p_co, p_ci, bits, p_k)
    return conv_weight_rom_words(w, p_co, p_ci, bits, p_k)
