"""The circulant engine (rtl/circulant_mac.v, CirCNN): a block-circulant layer computed by
fixed-point FFTs with one shared complex multiplier (4 real ones); its ROMs hold the weight
spectra, the twiddles and the bias (kernels/circulant_rom.py). Its schedule is fixed
(kernels.circulant_mac.CirculantSchedule), so it does not take part in balancing: the cycle
budget of the other layers rises to its interval.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from compiler.exec.golden import circulant_layer
from compiler.hw.base import (
    Engine,
    EngineCost,
    PlanError,
    Planned,
    RomField,
    RomImage,
    StoredLayer,
    bias_image,
    positive_int,
    stored_bias_bits,
)
from compiler.hw.dense import cost_entry, dense_cost, describe_matrix, matrix_spec
from compiler.hw.registry import register
from compiler.hw.timing import register_model
from kernels.circulant_mac import CirculantSchedule, rebuild_circulant
from kernels.circulant_rom import bias_bits, circulant_rtl_parameters, write_circulant_roms

MULTIPLIERS = 4  # one shared complex multiplier
# Its FFT datapath multiplies ~24-bit data by 16-18-bit twiddles/spectra (rtl/circulant_mac.v): the
# energy model prices its multiplies at this width, not at weight x activation bits.
MULT_BITS = (24, 18)
CIRCULANT_MULTIPLIERS = MULTIPLIERS


def circulant_multiplies(n_in: int, n_out: int, block: int) -> int:
    """Real multiplies per inference: 4 per butterfly ((P + Q) FFTs of L*b/2 butterflies) and per
    spectral product (P*Q*(b/2 + 1)), against n_in * n_out for the dense product."""
    s = CirculantSchedule(n_in, n_out, block)
    butterflies = (s.p + s.q) * s.stages * block // 2
    return MULTIPLIERS * (butterflies + s.p * s.q * s.bins)


def circulant_rom_bits(n_in: int, n_out: int, block: int, spectrum_bits: int, twiddle_frac: int) -> dict:
    """Weight spectra (P*Q*(b/2+1) words of 2*SB bits) and twiddles (b/2 words of 2*(T+2) bits)."""
    s = CirculantSchedule(n_in, n_out, block)
    return {"spectra": s.p * s.q * s.bins * 2 * spectrum_bits, "twiddles": (block // 2) * 2 * (twiddle_frac + 2)}


def circulant_cost(
    n_in: int, n_out: int, block: int, spectrum_bits: int, twiddle_frac: int, bias_bits: int
) -> EngineCost:
    """One input buffer (it loads only between vectors), so its interval is its whole latency
    N_IN + Q*(b + L*b/2 + H) + P*(Q*H + 1 + L*b/2) + N_OUT."""
    s = CirculantSchedule(n_in, n_out, block)
    rom = circulant_rom_bits(n_in, n_out, block, spectrum_bits, twiddle_frac)
    weights = rom["spectra"] + rom["twiddles"]
    return EngineCost(
        "circulant",
        weights + n_out * bias_bits,
        s.compute_cycles,
        s.latency,
        s.interval,
        tail=s.tail,
        weight_rom_bits=weights,
        output_span=s.output_span,
    )


def layer_cost(graph, node) -> EngineCost:
    layer = circulant_layer(graph, node)
    return circulant_cost(
        layer.n_in, layer.n_out, layer.block, layer.spectrum_bits, layer.twiddle_frac, bias_bits(layer)
    )


@register
class Circulant(Engine):
    kind = "circulant"
    ops = ("circulant",)
    module = "circulant_mac.v"
    plan_fields = {"multipliers": positive_int}
    fuses_requantize = True
    protectable = True

    def fixed_interval(self, graph, node):
        return layer_cost(graph, node).interval

    def plan(self, graph, node, budget, multipliers, largest):
        """Always the FFT engine; the annotation states what a dense engine would cost for the
        same weights (with `largest`, the recipe's largest-layer multipliers), for comparison."""
        if multipliers:
            raise PlanError(
                f"plan: layer {node.name!r} is block-circulant: its FFT engine always has "
                f"{MULTIPLIERS} multipliers (remove [plan.layers.{json.dumps(node.name)}] multipliers, "
                'or give it [lower.layers] engine = "dense" to compute its exact product)'
            )
        circ = layer_cost(graph, node)
        n_out, n_in = graph.params[node.inputs[1]].shape
        block = node.attrs["circulant"]["block"]
        p_dense = min(largest, n_in)
        dense = dense_cost(n_in, n_out, p_dense, node.attrs["weight_format"]["bits"], stored_bias_bits(graph, node))
        return Planned(
            self.kind,
            {
                "engine": self.kind,
                "multipliers": MULTIPLIERS,
                "engine_reason": (
                    f"block-circulant (b = {block}): FFT engine, {circ.rom_bits} ROM bits, {circ.interval} "
                    f"cycles per vector with {MULTIPLIERS} multipliers; a dense engine would "
                    f"need {dense.rom_bits} ROM bits, {dense.compute_cycles} cycles with {p_dense}"
                ),
                "break_even_sparsity": None,
                "delta_bits": None,
                "cost": {"circulant": cost_entry(circ, MULTIPLIERS), "dense": cost_entry(dense, p_dense)},
            },
            circ.rom_bits,
            circ.interval,
            MULTIPLIERS,
        )

    def check_plan(self, graph, node):
        p = node.annotations["multipliers"]
        return None if p == MULTIPLIERS else f"multipliers {p}: the FFT engine has exactly {MULTIPLIERS}"

    def spec(self, graph, node, follow, index, image):
        spec = matrix_spec(graph, node, follow, index, image, self.kind)
        layer = circulant_layer(graph, node)
        prefix = f"{spec.instance}_"
        spec.block_size, spec.b_bits = layer.block, bias_bits(layer)
        spec.w_file, spec.tw_file, spec.b_file = f"{prefix}spectra.mem", f"{prefix}twiddles.mem", f"{prefix}bias.mem"
        spec.parameters = circulant_rtl_parameters(
            layer, spec.out_bits, spec.shift, spec.relu, spec.requant, spec.w_file, spec.tw_file, spec.b_file
        )
        spec.cost = circulant_cost(
            layer.n_in, layer.n_out, layer.block, layer.spectrum_bits, layer.twiddle_frac, bias_bits(layer)
        )
        spec.stage = CirculantSchedule(layer.n_in, layer.n_out, layer.block)
        return spec

    def write_roms(self, graph, spec, folder: Path):
        layer = circulant_layer(graph, graph.node(spec.name))
        write_circulant_roms(
            layer, folder, prefix=f"{spec.instance}_", protection=spec.protection, per_lane=spec.protect_lanes
        )

    def stored(self, graph, spec):
        """The weight spectra (real and imaginary parts of one word) and the bias; the twiddle
        ROM holds constants of the FFT, not of the model."""
        node = graph.node(spec.name)
        layer = circulant_layer(graph, node)
        attrs = node.attrs["circulant"]
        b_name, re_name, im_name = node.inputs[2], node.inputs[3], node.inputs[4]
        p, q = layer.grid
        h, sb = layer.block // 2 + 1, layer.spectrum_bits
        index = np.arange(p * q * h, dtype=np.int64).reshape(p, q, h).transpose(0, 2, 1).reshape(-1, 1)
        fields = (RomField("spectra_re", index, sb, (0,)), RomField("spectra_im", index, sb, (sb,)))
        images = [
            RomImage(spec.w_file, "weights", 2 * sb, len(index), fields, lanes=2),  # re, im
            RomImage(spec.tw_file, "constants", 2 * (layer.twiddle_frac + 2), layer.block // 2, lanes=2),
            bias_image(spec.b_file, spec.n_out, bias_bits(layer)),
        ]
        arrays = {"spectra_re": layer.spectra_re, "spectra_im": layer.spectra_im, "bias": graph.params[b_name]}

        def to_params(a):
            # widths are derived from the spectra: a flip that would need wider datapaths than the
            # design has (where the RTL would wrap) is refused here (ValueError)
            rebuild_circulant(attrs, a["spectra_re"], a["spectra_im"], layer.vectors_q, a["bias"])
            return {re_name: a["spectra_re"], im_name: a["spectra_im"], b_name: a["bias"]}

        def pullback(g):
            return {"spectra_re": g[re_name], "spectra_im": g[im_name], "bias": g[b_name]}

        return StoredLayer(spec.name, self.kind, arrays, images, to_params, pullback)

    def describe(self, spec):
        return describe_matrix(spec, f" (block size {spec.block_size})")

    def layer_figures(self, graph, node, entry):
        """One length-b vector per block stored (padding included), the FFT's multiplies, and
        the fixed-point FFT's measured accuracy cost (lower's annotations)."""
        w = graph.params[node.inputs[1]]
        c = node.attrs["circulant"]
        b, p, q = c["block"], c["p"], c["q"]
        return {
            "stored_weights": p * q * b,
            "multiplies": circulant_multiplies(int(w[0].size), int(w.shape[0]), b),
            "index_bits": 0,
            "bias_bits": entry["rom_bits"] - entry["weight_rom_bits"],
            "spectrum_words": p * q * (b // 2 + 1),  # complex weight-spectrum words in ROM
            "circulant": c,
            # accumulator LSBs against the exact integer product, calibration rows and x_test
            "fft_error": node.annotations.get("fft_error"),
            "test_accuracy_exact_product": node.annotations.get("test_accuracy_exact_product"),
        }

    def inference_work(self, layer):
        """FFTs, spectral products, inverse FFTs; the spectra are read once."""
        m = layer["multiplies"]
        return {
            "multiplies": m,
            "additions": m,
            "weight_reads": layer["spectrum_words"],
            "weight_read_bits": layer["rom_bits"],
            "skipped_zeros": 0,
        }

    def multiply_bits(self, layer):
        return MULT_BITS


class CirculantModel:
    """rtl/circulant_mac.v: S_LOAD (in_ready) for N_IN inputs, then fixed-length FFT/MAC states;
    only S_OUT waits for `advance`."""

    def __init__(self, stage: CirculantSchedule):
        self.s = stage
        self.phase, self.count, self.countdown, self.block, self.n, self.valid = "load", 0, 0, 0, 0, False

    def in_ready(self) -> bool:
        return self.phase == "load"

    def out_valid(self) -> bool:
        return self.valid

    def step(self, accept: bool, out_ready: bool) -> None:
        s = self.s
        advance = not self.valid or out_ready
        if advance:
            self.valid = self.phase == "out"
        if self.phase == "load" and accept:
            self.count += 1
            if self.count == s.n_in:
                self.count, self.phase, self.countdown = 0, "busy", s.forward + s.per_out
        elif self.phase == "busy":
            self.countdown -= 1
            if self.countdown == 0:
                self.phase = "out"
        elif self.phase == "out" and advance:
            self.n += 1
            if self.n == s.block or self.block * s.block + self.n == s.n_out:
                self.n, self.block = 0, self.block + 1
                if self.block * s.block >= s.n_out:
                    self.block, self.phase = 0, "load"
                else:
                    self.phase, self.countdown = "busy", s.per_out


register_model(CirculantSchedule, CirculantModel, lambda s: s.n_in + s.forward + s.p * s.per_out + s.n_out)


def circulant_output_edge(n_in: int, n_out: int, block: int, o: int) -> int:
    """kernels.circulant_mac.CirculantSchedule.output_edge."""
    return CirculantSchedule(n_in, n_out, block).output_edge(o)
