"""The sparse engine (rtl/sparse_mac.v): only nonzero weights in ROM with delta-coded column
indices (kernels/sparse_mac.py), so cycles scale with nonzeros / P. It is the alternative to the
dense engine for a dense layer; `choose_dense_or_sparse` is that choice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compiler.hw.base import (
    EngineCost,
    Planned,
    RomField,
    RomImage,
    StoredLayer,
    bias_image,
    bias_or_zeros,
    bias_param,
    positive_int,
    stored_bias_bits,
)
from compiler.hw.dense import (
    Dense,
    cost_entry,
    describe_matrix,
    fewest_multipliers,
    matrix_spec,
    planned_matrix,
    rom_cost,
    rom_parameters,
)
from compiler.hw.registry import register, register_choice
from kernels.rom import row_count_words, sparse_rom_words, vector_rom_words, write_mem
from kernels.sparse_mac import (
    SparseEncoding,
    best_delta_bits,
    encode_sparse,
    entry_columns,
    sparse_rom_bits,
    sparse_schedule,
)
from kernels.stream_order import stream_order, stream_weight_matrix, unstream


def sparse_cost(enc: SparseEncoding, w_bits: int, bias_bits: int) -> EngineCost:
    return rom_cost("sparse", sparse_schedule(enc), sparse_rom_bits(enc, w_bits), bias_bits)


def sparse_encoding(w_q: np.ndarray, multipliers: int, w_bits: int) -> SparseEncoding:
    return encode_sparse(w_q, multipliers, best_delta_bits(w_q, multipliers, w_bits))


def break_even_sparsity(enc: SparseEncoding, w_q: np.ndarray, w_bits: int) -> float:
    """Sparsity below which the sparse engine's ROM would exceed the dense one's, at this
    layer's measured cost per stored entry (value + index + padding)."""
    nonzeros = max(1, int(np.count_nonzero(w_q)))
    bits_per_nonzero = sparse_rom_bits(enc, w_bits) / nonzeros
    return float(max(0.0, 1.0 - w_bits / bits_per_nonzero))


@register
class Sparse(Dense):
    """The dense engine's layer and plan checks; its own encoding, ROMs, cost and schedule."""

    kind = "sparse"
    ops = ("dense",)
    default = False
    module = "sparse_mac.v"
    plan_fields = {"multipliers": positive_int, "delta_bits": positive_int}
    fuses_requantize = True

    def plan(self, graph, node, budget, multipliers, largest):
        w_q = planned_matrix(graph, node)
        w_bits, b_bits = node.attrs["weight_format"]["bits"], stored_bias_bits(graph, node)
        n_in = w_q.shape[1]
        encodings: dict[int, SparseEncoding] = {}

        def cost_at(p):
            encodings[p] = encodings.get(p) or sparse_encoding(w_q, p, w_bits)
            return sparse_cost(encodings[p], w_bits, b_bits)

        if multipliers:
            p = min(multipliers, n_in)
            cost = cost_at(p)
        else:
            p, cost = fewest_multipliers(cost_at, n_in, budget)
        enc = encodings[p]
        return Planned(
            self.kind,
            {
                "engine": self.kind,
                "multipliers": p,
                "delta_bits": enc.delta_bits,
                "break_even_sparsity": break_even_sparsity(enc, w_q, w_bits),
                "cost": {"sparse": cost_entry(cost, p)},
            },
            cost.rom_bits,
            cost.compute_cycles,
            p,
        )

    def _encoding(self, graph, node, spec) -> SparseEncoding:
        w_q = stream_weight_matrix(graph.params[node.inputs[1]], spec.input_chw)
        return encode_sparse(w_q, spec.multipliers, int(node.annotations["delta_bits"]))

    def spec(self, graph, node, follow, index, image):
        spec = matrix_spec(graph, node, follow, index, image, self.kind)
        enc = self._encoding(graph, node, spec)
        spec.delta_bits, spec.n_words = enc.delta_bits, int(enc.row_words.sum())
        spec.cnt_bits = max(1, int(enc.row_words.max()).bit_length())
        spec.c_file = spec.w_file.replace("_w.mem", "_c.mem")
        spec.cost = sparse_cost(enc, spec.w_bits, spec.b_bits)
        spec.stage = sparse_schedule(enc)
        spec.parameters = rom_parameters(
            spec, {"D_BITS": spec.delta_bits, "CNT_BITS": spec.cnt_bits, "N_WORDS": spec.n_words, "C_FILE": spec.c_file}
        )
        return spec

    def write_roms(self, graph, spec, folder: Path):
        node = graph.node(spec.name)
        enc = self._encoding(graph, node, spec)
        bias = vector_rom_words(bias_or_zeros(graph, node, spec.n_out), spec.b_bits)
        write_mem(folder / spec.b_file, bias, spec.b_bits, spec.protection)
        entry_bits = spec.multipliers * (spec.w_bits + spec.delta_bits)
        entries = sparse_rom_words(enc, spec.w_bits)
        write_mem(folder / spec.w_file, entries, entry_bits, spec.protection, spec.code_lanes(spec.multipliers))
        write_mem(folder / spec.c_file, row_count_words(enc), spec.cnt_bits, spec.protection)

    def stored(self, graph, spec):
        """Entry weights and their delta indices (one entry ROM), the bias; the row-count ROM is
        control (a flip there changes the schedule, not a value)."""
        node = graph.node(spec.name)
        w_name, b_name = node.inputs[1], bias_param(node)
        w = graph.params[w_name]
        order = stream_order(w.shape, spec.input_chw)
        enc = self._encoding(graph, node, spec)
        wb, db, p = spec.w_bits, enc.delta_bits, spec.multipliers
        index = np.arange(enc.weights.size, dtype=np.int64).reshape(enc.weights.shape)
        entry = tuple(s * (wb + db) for s in range(p))
        fields = (
            RomField("entry_weights", index, wb, entry),
            RomField("entry_deltas", index, db, tuple(o + wb for o in entry), signed=False),
        )
        images = [
            RomImage(spec.w_file, "weights", p * (wb + db), len(index), fields, lanes=p),
            RomImage(spec.c_file, "control", spec.cnt_bits, spec.n_out),
            bias_image(spec.b_file, spec.n_out, spec.b_bits),
        ]
        rows = np.repeat(np.arange(spec.n_out), enc.row_words)[:, None].repeat(p, axis=1)
        arrays = {"entry_weights": enc.weights, "entry_deltas": enc.deltas, "bias": graph.params[b_name]}

        def to_params(a):
            flipped = SparseEncoding(a["entry_weights"], a["entry_deltas"], enc.row_words, enc.n_in, p, db)
            cols, live = entry_columns(flipped), flipped.weights != 0
            if (cols[live] >= enc.n_in).any():
                raise ValueError(f"layer {spec.name!r}: a sparse index points past the last input")
            w_stream = np.zeros((spec.n_out, enc.n_in), dtype=np.int64)
            np.add.at(w_stream, (rows[live], cols[live]), flipped.weights[live])
            return {w_name: unstream(w_stream, order).astype(w.dtype), b_name: a["bias"]}

        cols = entry_columns(enc)
        inside = cols < enc.n_in

        def pullback(g):
            g_stream = stream_weight_matrix(g[w_name], spec.input_chw)
            g_entries = np.where(inside, g_stream[rows, np.minimum(cols, enc.n_in - 1)], 0.0)
            return {"entry_weights": g_entries, "bias": g[b_name]}

        return StoredLayer(spec.name, self.kind, arrays, images, to_params, pullback)

    def describe(self, spec):
        return describe_matrix(spec)

    def layer_figures(self, graph, node, entry):
        """Only the nonzeros are stored and multiplied; `index_bits`: what storing them costs
        beyond their values (indices, padding entries)."""
        nonzeros = int(np.count_nonzero(graph.params[node.inputs[1]]))
        bits = node.attrs["weight_format"]["bits"]
        return {
            "stored_weights": nonzeros,
            "multiplies": nonzeros,
            "index_bits": entry["weight_rom_bits"] - nonzeros * bits,
        }

    def inference_work(self, layer):
        """Zero weights are skipped: neither read nor multiplied."""
        n_out, n_in = layer["shape"]
        macs = n_out * n_in - layer["zero_weights"]
        return {
            "multiplies": macs,
            "additions": macs,
            "weight_reads": macs,
            "weight_read_bits": layer["rom_bits"],
            "skipped_zeros": layer["zero_weights"],
        }


def choose_dense_or_sparse(graph, node, planned: dict[str, Planned], budget: int, forced: str | None) -> dict:
    """A dense layer's engine: the recipe's, or sparse where its ROM (values + indices) is
    smaller than the dense one's and it needs no more cycles: irregular sparsity costs index
    bits, so the sparse engine pays off only above a break-even sparsity."""
    dense, sparse = planned["dense"], planned["sparse"]
    pays = sparse.rom_bits < dense.rom_bits and sparse.cycles <= max(dense.cycles, budget)
    chosen = planned[forced] if forced else (sparse if pays else dense)
    w_q = planned_matrix(graph, node)
    sparsity = float(np.mean(w_q == 0))
    break_even = sparse.annotations["break_even_sparsity"]
    why = (
        f"sparsity {sparsity:.1%} vs break-even {break_even:.1%}: sparse {sparse.rom_bits} ROM bits, "
        f"{sparse.cycles} cycles with {sparse.multipliers} multipliers; dense {dense.rom_bits} ROM bits, "
        f"{dense.cycles} cycles with {dense.multipliers}"
    )
    return {
        "engine": chosen.engine,
        "multipliers": chosen.multipliers,
        "engine_reason": ("chosen by recipe; " if forced else "") + why,
        "break_even_sparsity": round(break_even, 4),
        "delta_bits": chosen.annotations["delta_bits"],
        "cost": dense.annotations["cost"] | sparse.annotations["cost"],
    }


register_choice("dense", choose_dense_or_sparse)
