"""The circulant engine (rtl/circulant_mac.v, CirCNN): a block-circulant layer computed by
fixed-point FFTs on max(BF, SM) shared complex multipliers (3 real ones each, Gauss): BF butterfly
units per cycle, SM spectral lanes (input blocks multiplied per MAC cycle); its ROMs hold the weight
spectra (SM per word), the twiddles and the bias (kernels/circulant_rom.py). Its schedule is
kernels.circulant_mac.CirculantSchedule; the plan chooses BF and SM like a dense engine's
multipliers: the fewest multipliers whose interval meets the cycle budget, and with the plan's
`multipliers` the layer's cycles set the budget like any default engine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.hw.base import (
    Engine,
    EngineCost,
    Planned,
    RomField,
    RomImage,
    StoredLayer,
    bias_image,
    positive_int,
    probe_layout,
    stored_bias_bits,
)
from compiler.hw.dense import cost_entry, dense_cost, describe_matrix, matrix_spec
from compiler.hw.registry import register
from compiler.hw.timing import register_model
from compiler.ops.circulant import circulant_layer
from kernels.circulant_mac import CirculantSchedule, rebuild_circulant
from kernels.circulant_rom import bias_bits, circulant_rtl_parameters, spectra_words, write_circulant_roms

MULTIPLIERS = 3  # real multipliers per complex multiplier (Gauss; the BF = SM = 1 engine has one)
# Its FFT datapath multiplies ~24-bit data by 16-18-bit twiddles/spectra (rtl/circulant_mac.v): the
# energy model prices its multiplies at this width, not at weight x activation bits.
MULT_BITS = (24, 18)
CIRCULANT_MULTIPLIERS = MULTIPLIERS


def circulant_multiplies(n_in: int, n_out: int, block: int) -> int:
    """Real multiplies per inference: 3 per butterfly ((P + Q) FFTs of L*b/2 butterflies) and per
    spectral product (P*Q*(b/2 + 1)), against n_in * n_out for the dense product."""
    s = CirculantSchedule(n_in, n_out, block)
    butterflies = (s.p + s.q) * s.stages * block // 2
    return MULTIPLIERS * (butterflies + s.p * s.q * s.bins)


def circulant_rom_bits(
    n_in: int, n_out: int, block: int, spectrum_bits: int, twiddle_frac: int, lanes: int = 1
) -> dict:
    """Weight spectra (P*(b/2+1)*ceil(Q/SM) words of SM*2*SB bits) and twiddles (b/2 words of
    2*(T+2) bits)."""
    s = CirculantSchedule(n_in, n_out, block, 1, lanes)
    return {
        "spectra": s.p * s.bins * s.mac_groups * lanes * 2 * spectrum_bits,
        "twiddles": (block // 2) * 2 * (twiddle_frac + 2),
    }


def circulant_split(n_in: int, n_out: int, block: int, lanes: int) -> tuple[int, int]:
    """(BF, SM) for `lanes` complex multipliers: the most butterfly units (a power of two, at
    most b/2) and spectral lanes (at most Q) they can run, which is the fastest split (both
    phases share the multipliers, so neither takes any from the other)."""
    q = -(-n_in // block)
    bf = 1
    while bf * 2 <= min(lanes, block // 2):
        bf *= 2
    groups = -(-q // max(1, min(lanes, q)))  # MAC cycles per bin
    return bf, -(-q // groups)  # the fewest lanes that many cycles need


def circulant_max_lanes(n_in: int, block: int) -> int:
    """Complex multipliers past which the engine gets no faster: max(b/2, Q)."""
    return max(block // 2, -(-n_in // block))


def circulant_schedule(n_in: int, n_out: int, block: int, multipliers: int) -> CirculantSchedule:
    """The engine's schedule with at most `multipliers` real multipliers (at least 3: one complex
    multiplier), split as circulant_split."""
    lanes = min(max(1, multipliers // MULTIPLIERS), circulant_max_lanes(n_in, block))
    return CirculantSchedule(n_in, n_out, block, *circulant_split(n_in, n_out, block, lanes))


@dataclass(frozen=True)
class CirculantCost(EngineCost):
    """EngineCost plus when its one input buffer frees (`input_release` edges after its compute
    starts) and when the next vector's compute may start at the earliest (`restart` edges after):
    compiler/hw/timing.py design_interval."""

    input_release: int = 0
    restart: int = 0


def circulant_cost(
    n_in: int,
    n_out: int,
    block: int,
    spectrum_bits: int,
    twiddle_frac: int,
    bias_bits: int,
    butterflies: int = 1,
    lanes: int = 1,
) -> EngineCost:
    """Latency N_IN + FWD + PO + (P-1)*max(PO + 1, b) + (N_OUT - (P-1)*b) + 1, FWD =
    Q*(b/BF + L*b/(2*BF) + ceil(H/BF)), PO = ceil(Q/SM)*H + 1 + L*b/(2*BF) (CirculantSchedule);
    interval: its restart, or the input buffer's release plus N_IN if longer. The spectra ROM's
    padding lanes (Q not a multiple of SM) are counted: they are stored."""
    s = CirculantSchedule(n_in, n_out, block, butterflies, lanes)
    rom = circulant_rom_bits(n_in, n_out, block, spectrum_bits, twiddle_frac, lanes)
    weights = rom["spectra"] + rom["twiddles"]
    return CirculantCost(
        "circulant",
        weights + n_out * bias_bits,
        s.compute_cycles,
        s.latency,
        s.interval,
        tail=s.tail,
        weight_rom_bits=weights,
        output_span=s.output_span,
        input_release=s.release,
        restart=s.restart,
    )


def choose_schedule(
    n_in: int, n_out: int, block: int, budget: int, multipliers: int | None = None
) -> tuple[CirculantSchedule, str]:
    """The plan's choice and why: with `multipliers`, their split (circulant_schedule); else the
    fewest complex multipliers whose interval meets `budget` (the fastest split of each count),
    or the fastest engine if none does."""
    if multipliers:
        return circulant_schedule(n_in, n_out, block, multipliers), f"{multipliers} multipliers given"
    for lanes in range(1, circulant_max_lanes(n_in, block) + 1):
        s = circulant_schedule(n_in, n_out, block, MULTIPLIERS * lanes)
        if s.interval <= budget:
            return s, f"the fewest meeting the {budget}-cycle budget"
    return s, f"the fastest; none meets the {budget}-cycle budget"


def layer_cost(graph, node, butterflies: int = 1, lanes: int = 1) -> EngineCost:
    layer = circulant_layer(graph, node)
    return circulant_cost(
        layer.n_in,
        layer.n_out,
        layer.block,
        layer.spectrum_bits,
        layer.twiddle_frac,
        bias_bits(layer),
        butterflies,
        lanes,
    )


def _optional_positive(v) -> str | None:
    """BF and SM: absent in plans made before the parallel engine (then 1)."""
    return None if v is None else positive_int(v)


def planned_split(annotations: dict) -> tuple[int, int]:
    """(BF, SM) of a planned circulant node."""
    return int(annotations.get("butterfly_units") or 1), int(annotations.get("spectral_lanes") or 1)


@register
class Circulant(Engine):
    kind = "circulant"
    ops = ("circulant",)
    module = "circulant_mac.v"
    plan_fields = {
        "multipliers": positive_int,
        "butterfly_units": _optional_positive,
        "spectral_lanes": _optional_positive,
    }
    fuses_requantize = True
    protectable = True
    # Its outputs leave from an output buffer while it computes on, so an engine held by the
    # one downstream runs up to a block ahead and its outputs then come faster than its free
    # running span: design.json's cycles come from the edge-by-edge model (CirculantModel).
    rom_streaming = False

    def budget_cycles(self, graph, node, multipliers):
        """Its interval with (at most) `multipliers` real multipliers, the fastest split."""
        n_out, n_in = graph.params[node.inputs[1]].shape
        return circulant_schedule(n_in, n_out, node.attrs["circulant"]["block"], multipliers).interval

    def plan(self, graph, node, budget, multipliers, largest):
        """The fewest complex multipliers (3 real ones each) whose interval meets `budget`, split
        into BF butterfly units and SM spectral lanes (circulant_split), or the split of the
        recipe's `multipliers` for the layer (rounded down to a multiple of 3, at least 3). The
        annotation states what a dense engine would cost for the same weights with the same
        multipliers."""
        n_out, n_in = graph.params[node.inputs[1]].shape
        block = node.attrs["circulant"]["block"]
        s, why = choose_schedule(n_in, n_out, block, budget, multipliers)
        circ = layer_cost(graph, node, s.bf, s.sm)
        m = s.multipliers
        p_dense = min(m, n_in)
        dense = dense_cost(n_in, n_out, p_dense, node.attrs["weight_format"]["bits"], stored_bias_bits(graph, node))
        return Planned(
            self.kind,
            {
                "engine": self.kind,
                "multipliers": m,
                "butterfly_units": s.bf,
                "spectral_lanes": s.sm,
                "engine_reason": (
                    f"block-circulant (b = {block}): FFT engine with BF = {s.bf} butterfly units and "
                    f"SM = {s.sm} spectral lanes, {m} multipliers ({why}): {circ.interval} cycles per "
                    f"vector, {circ.rom_bits} ROM bits; a dense engine with {p_dense} multipliers "
                    f"would need {dense.compute_cycles} cycles, {dense.rom_bits} ROM bits"
                ),
                "break_even_sparsity": None,
                "delta_bits": None,
                "cost": {"circulant": cost_entry(circ, m), "dense": cost_entry(dense, p_dense)},
            },
            circ.rom_bits,
            circ.interval,
            m,
        )

    def check_plan(self, graph, node):
        n_out, n_in = graph.params[node.inputs[1]].shape
        bf, sm = planned_split(node.annotations)
        try:
            s = CirculantSchedule(n_in, n_out, node.attrs["circulant"]["block"], bf, sm)
        except ValueError as e:
            return str(e)
        p = node.annotations["multipliers"]
        return None if p == s.multipliers else f"multipliers {p}: BF = {bf}, SM = {sm} have {s.multipliers}"

    def spec(self, graph, node, follow, index, image):
        spec = matrix_spec(graph, node, follow, index, image, self.kind)
        layer = circulant_layer(graph, node)
        prefix = f"{spec.instance}_"
        spec.block_size, spec.b_bits = layer.block, bias_bits(layer)
        spec.w_file, spec.tw_file, spec.b_file = f"{prefix}spectra.mem", f"{prefix}twiddles.mem", f"{prefix}bias.mem"
        bf, sm = planned_split(node.annotations)
        spec.parameters = circulant_rtl_parameters(
            layer, spec.out_bits, spec.shift, spec.relu, spec.requant, spec.w_file, spec.tw_file, spec.b_file, bf, sm
        )
        spec.cost = circulant_cost(
            layer.n_in, layer.n_out, layer.block, layer.spectrum_bits, layer.twiddle_frac, bias_bits(layer), bf, sm
        )
        spec.stage = CirculantSchedule(layer.n_in, layer.n_out, layer.block, bf, sm)
        return spec

    def write_roms(self, graph, spec, folder: Path):
        layer = circulant_layer(graph, graph.node(spec.name))
        write_circulant_roms(
            layer,
            folder,
            prefix=f"{spec.instance}_",
            protection=spec.protection,
            per_lane=spec.protect_lanes,
            lanes=spec_lanes(spec),
        )

    def stored(self, graph, spec):
        """The weight spectra (SM lanes of a real and an imaginary part per word, the layout
        found by probing kernels.circulant_rom.spectra_words) and the bias; the twiddle ROM holds
        constants of the FFT, not of the model."""
        node = graph.node(spec.name)
        layer = circulant_layer(graph, node)
        attrs = node.attrs["circulant"]
        b_name, re_name, im_name = node.inputs[2], node.inputs[3], node.inputs[4]
        sb, sm = layer.spectrum_bits, spec_lanes(spec)
        shape = layer.spectra_re.shape
        zeros = np.zeros(shape, dtype=np.int64)
        index_re = probe_layout(lambda a, k: spectra_words(a, zeros, k, sm), shape, 2 * sm)[:, 0::2]
        index_im = probe_layout(lambda a, k: spectra_words(zeros, a, k, sm), shape, 2 * sm)[:, 1::2]
        fields = (
            RomField("spectra_re", index_re, sb, tuple(2 * sb * u for u in range(sm))),
            RomField("spectra_im", index_im, sb, tuple(2 * sb * u + sb for u in range(sm))),
        )
        images = [
            RomImage(spec.w_file, "weights", 2 * sb * sm, len(index_re), fields, lanes=2 * sm),  # re, im
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
        bf = spec.parameters.get("BF", 1)
        return describe_matrix(
            spec, f" (block size {spec.block_size}, {bf} butterfly units, {spec_lanes(spec)} spectral lanes)"
        )

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
            "butterfly_units": planned_split(node.annotations)[0],
            "spectral_lanes": planned_split(node.annotations)[1],
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


def spec_lanes(spec) -> int:
    """SM of an instance: the spectra per ROM word."""
    return int(spec.parameters.get("SM", 1))


class CirculantModel:
    """rtl/circulant_mac.v: one input buffer (in_ready while it is free: x_full low), freed at the
    vector's last fill; the compute (fixed-length FFT/MAC states) starts at the edge that
    completes the loading or, if later, the last hand-over of the vector before; each output
    block waits in S_HAND until the output buffer is free (`hand`), and the buffer emits one
    output per `advance`."""

    def __init__(self, stage: CirculantSchedule):
        self.s = stage
        self.phase, self.count, self.countdown, self.block, self.valid = "idle", 0, 0, 0, False
        self.x_full, self.elapsed = False, -1  # elapsed: edges since the compute start, until the release
        self.out_busy, self.out_n, self.out_row = False, 0, 0

    def in_ready(self) -> bool:
        return not self.x_full

    def out_valid(self) -> bool:
        return self.valid

    def _start(self) -> None:
        self.phase, self.countdown, self.elapsed = "busy", self.s.forward + self.s.per_out, 0

    def step(self, accept: bool, out_ready: bool) -> None:
        s = self.s
        advance = not self.valid or out_ready
        out_end = self.out_n == s.block - 1 or self.out_row == s.n_out - 1
        hand = self.phase == "hand" and (not self.out_busy or (advance and out_end))
        if advance:
            self.valid = self.out_busy
        if self.out_busy and advance:
            self.out_n += 1
            self.out_row = 0 if self.out_row == s.n_out - 1 else self.out_row + 1
            if out_end:
                self.out_busy = False
        if hand:
            self.out_busy, self.out_n = True, 0
        last_load = False
        if accept:
            self.count += 1
            if self.count == s.n_in:
                self.count, last_load = 0, True
        vec_ready = self.x_full or last_load
        if last_load:
            self.x_full = True
        if self.elapsed >= 0:
            self.elapsed += 1
            if self.elapsed == s.release:
                self.x_full, self.elapsed = False, -1
        if self.phase == "idle":
            if vec_ready:
                self._start()
        elif self.phase == "busy":
            self.countdown -= 1
            if self.countdown == 0:
                self.phase = "hand"
        elif hand:
            self.block += 1
            if self.block == s.p:
                self.block = 0
                if vec_ready:
                    self._start()
                else:
                    self.phase = "idle"
            else:
                self.phase, self.countdown = "busy", s.per_out


register_model(CirculantSchedule, CirculantModel, lambda s: s.n_in + s.forward + s.p * s.per_out + s.n_out)


def circulant_output_edge(n_in: int, n_out: int, block: int, o: int, butterflies: int = 1, lanes: int = 1) -> int:
    """kernels.circulant_mac.CirculantSchedule.output_edge."""
    return CirculantSchedule(n_in, n_out, block, butterflies, lanes).output_edge(o)
