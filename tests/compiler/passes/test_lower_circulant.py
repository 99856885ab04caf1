"""lower on block-circulant layers: `circulant` nodes, precision options, engine planning, the
measured FFT cost, and compiler/hw/circulant.py's formulas."""

import numpy as np
import pytest

from compiler.exec import golden
from compiler.frontend.onnx import load_onnx
from compiler.hw import circulant as hw_circulant
from compiler.hw import dense as hw_dense
from compiler.ops.circulant import circulant_layer
from compiler.passes.base import Context, PassError
from compiler.passes.manager import run_flow
from compiler.recipe import RecipeError, validate_recipe
from kernels.circulant_mac import CirculantSchedule, circulant_error, circulant_vectors, plan_circulant
from kernels.circulant_rom import bias_bits
from tests.conftest import EXAMPLES, lower_model

FIRST, SECOND, LAST = "/1/Gemm", "/3/Gemm", "/5/Gemm"  # digits MLP: 64->32, 32->16, 16->10


def lower_circulant(data, circulant=None, lower=None):
    recipe = {
        "passes": ["canonicalize", "circulant", "lower"],
        "circulant": {"block_size": 8, "epochs": 2} | (circulant or {}),
    }
    if lower:
        recipe["lower"] = lower
    return lower_model(EXAMPLES / "digits_mlp.onnx", data, recipe)[1]


@pytest.fixture(scope="module")
def lowered(digits_data):
    return lower_circulant(digits_data)


def test_circulant_layers_become_circulant_nodes_with_their_stored_spectra(lowered):
    assert [n.op for n in lowered.nodes] == [
        "quantize",
        "flatten",
        "circulant",
        "requantize",
        "circulant",
        "requantize",
        "dense",
        "dequantize",
    ]
    assert [n.name for n in lowered.weighted_nodes()] == [FIRST, SECOND, LAST]
    for node in lowered.weighted_nodes()[:2]:
        w_q, b_q, re, im = (lowered.params[t] for t in node.inputs[1:])
        attrs = node.attrs["circulant"]
        assert attrs["block"] == 8 and attrs["fft_guard"] == 3 + 6 and attrs["twiddle_frac"] == 16
        assert re.shape == im.shape == (attrs["p"], attrs["q"], 5)
        # the quantized weights are still exactly circulant, and the stored spectra are theirs
        fresh = plan_circulant(
            circulant_vectors(w_q.astype(np.int64), 8),
            b_q,
            w_q.shape[1],
            w_q.shape[0],
            in_bits=node.attrs["input_format"]["bits"],
        )
        assert np.array_equal(fresh.spectra_re, re) and np.array_equal(fresh.spectra_im, im)
        assert node.attrs["acc_bits"] == attrs["acc_bits"] == fresh.acc_bits
        # the accumulator keeps the dense contract: Q(acc_bits, fw + fx), then the same requantize
        assert node.attrs["acc_frac"] == node.attrs["weight_format"]["frac"] + node.attrs["input_format"]["frac"]
        follow = lowered.consumers(node.outputs[0])[0]
        assert follow.op == "requantize" and follow.attrs["shift"] == node.attrs["acc_frac"] - follow.attrs["out_frac"]


def test_circulant_layers_get_the_fft_engine_and_set_the_cycle_budget(lowered):
    first, second, last = lowered.weighted_nodes()
    for node in (first, second):
        a = node.annotations
        n_out, n_in = lowered.params[node.inputs[1]].shape
        schedule = CirculantSchedule(n_in, n_out, 8, a["butterfly_units"], a["spectral_lanes"])
        assert a["engine"] == "circulant" and a["multipliers"] == schedule.multipliers <= 16  # [plan] default
        layer = circulant_layer(lowered, node)
        want = hw_circulant.circulant_cost(
            layer.n_in,
            layer.n_out,
            8,
            layer.spectrum_bits,
            layer.twiddle_frac,
            bias_bits(layer),
            schedule.bf,
            schedule.sm,
        )
        assert a["cost"]["circulant"] == want.__dict__ | {"multipliers": a["multipliers"]}
        assert "block-circulant (b = 8)" in a["engine_reason"] and "dense" in a["cost"]
        # at the same multipliers the FFT engine is no slower than the dense engine it replaces
        # (strictly faster on the larger layer: O(n log n) against O(n^2))
        assert a["cost"]["dense"]["multipliers"] == a["multipliers"]
        circ, dense = a["cost"]["circulant"]["compute_cycles"], a["cost"]["dense"]["compute_cycles"]
        assert circ < dense if node is first else circ <= dense
    # the dense layer is balanced to the plan's cycle budget: fewest multipliers within it
    target = lowered.meta["plan"]["cycle_budget"]
    p = last.annotations["multipliers"]
    assert last.annotations["engine"] == "dense" and last.annotations["cost"]["dense"]["compute_cycles"] <= target
    assert p == 1 or hw_dense.dense_cost(16, 10, p - 1, 8, 17).compute_cycles > target


def test_the_fft_cost_is_measured_on_calibration_and_test_data(lowered, digits_data):
    record = {}
    golden.run(lowered, digits_data.x_test, record=record)
    for node in lowered.weighted_nodes()[:2]:
        fft = node.annotations["fft_error"]
        assert fft["calibration"]["samples"] == len(digits_data.x_train)
        assert fft["test"]["samples"] == len(digits_data.x_test)
        direct = circulant_error(record[node.name], circulant_layer(lowered, node))
        assert {k: fft["test"][k] for k in direct} == direct
        assert 0 < fft["test"]["max_abs"] <= fft["test"]["bound"]  # b = 8 is not exact, but bounded
        assert 0.0 < node.annotations["test_accuracy_exact_product"] <= 1.0
    exact = golden.run(lowered, digits_data.x_test, exact={FIRST, SECOND}).classes
    assert lowered.meta["circulant_test_accuracy_exact_product"] == float(np.mean(exact == digits_data.y_test))
    assert "fft_error" not in lowered.node(LAST).annotations


def test_precision_options_pass_wide_and_per_layer(digits_data):
    g = lower_circulant(
        digits_data,
        lower={
            "twiddle_frac": 12,
            "spectrum_bits": 12,
            "fft_guard": 4,
            "ifft_guard": 3,
            "layers": {SECOND: {"twiddle_frac": 14, "fft_guard": "auto"}},
        },
    )
    first, second = (g.node(n).attrs["circulant"] for n in (FIRST, SECOND))
    assert (first["twiddle_frac"], first["spectrum_bits"], first["fft_guard"], first["ifft_guard"]) == (12, 12, 4, 3)
    assert (second["twiddle_frac"], second["fft_guard"]) == (14, 3 + 6)
    golden.run(g, digits_data.x_test[:64])  # circulant_mac checks every width on the way


@pytest.mark.parametrize(
    "table, message",
    [
        ({"twiddle_frac": 1}, "[lower] twiddle_frac: must be an integer in 2..30, got 1"),
        ({"spectrum_bits": 40}, "[lower] spectrum_bits: must be an integer in 2..32"),
        ({"fft_guard": "big"}, "[lower] fft_guard: must be an integer in 0..24, got 'big' (or \"auto\")"),
        ({"ifft_guard": -1}, "[lower] ifft_guard: must be an integer in 0..16"),
        ({"layers": {FIRST: {"fft_guard": 99}}}, f'[lower.layers."{FIRST}"] fft_guard: must be an integer in 0..24'),
    ],
)
def test_bad_precision_options_are_refused_before_any_work(table, message):
    validate_recipe({"lower": {"fft_guard": "auto", "twiddle_frac": 18}}, [FIRST, SECOND, LAST])
    with pytest.raises(RecipeError) as e:
        validate_recipe({"lower": table}, [FIRST, SECOND, LAST])
    assert message in str(e.value)


def test_the_dense_engine_on_a_circulant_layer_computes_its_exact_product(digits_data):
    g = lower_circulant(digits_data, lower={"layers": {FIRST: {"engine": "dense"}}})
    assert g.node(FIRST).op == "dense" and g.node(FIRST).annotations["engine"] == "dense"
    assert g.node(FIRST).annotations["block_size"] == 8  # the structure is still recorded
    assert g.node(SECOND).op == "circulant"


def test_multipliers_for_a_circulant_layer_choose_its_parallelism(digits_data):
    few = lower_circulant(digits_data, lower={"layers": {FIRST: {"multipliers": 3}}}).node(FIRST).annotations
    more = lower_circulant(digits_data, lower={"layers": {FIRST: {"multipliers": 8}}}).node(FIRST).annotations
    assert (few["multipliers"], few["butterfly_units"], few["spectral_lanes"]) == (3, 1, 1)
    assert more["multipliers"] == 6  # two complex multipliers (3 real each): 8 rounded down
    assert more["cost"]["circulant"]["interval"] < few["cost"]["circulant"]["interval"]
    g = lower_circulant(digits_data, lower={"layers": {FIRST: {"multipliers": 8, "engine": "dense"}}})
    assert g.node(FIRST).annotations["multipliers"] == 8


def test_weights_that_stopped_being_circulant_are_refused(digits_data):
    ctx = Context(
        data=digits_data, recipe={"circulant": {"block_size": 8, "epochs": 0}}, log=lambda *_: None, progress=False
    )
    g, _ = run_flow(load_onnx(EXAMPLES / "digits_mlp.onnx"), ["canonicalize", "circulant"], ctx)
    g.params[g.node(FIRST).inputs[1]][0, 0] += 0.5  # e.g. admm retrained it after circulant
    with pytest.raises(PassError, match=f"layer '{FIRST}' was made block-circulant .* no longer"):
        run_flow(g, ["lower"], ctx)


def test_a_layer_too_wide_for_the_fft_datapath_is_refused(digits_data):
    with pytest.raises(PassError, match=f"circulant layer '{FIRST}': .*-bit intermediates"):
        lower_circulant(digits_data, lower={"spectrum_bits": 32, "twiddle_frac": 30, "fft_guard": 24})


# ------------------------------------------------------------------------ cost formulas
@pytest.mark.parametrize(
    "n_in, n_out, b, bf, sm",
    [(64, 32, 8, 1, 1), (32, 16, 8, 4, 4), (10, 7, 4, 2, 3), (20, 13, 8, 2, 2), (6, 4, 2, 1, 3), (784, 300, 16, 8, 7)],
)
def test_circulant_cost_is_the_rtl_header_formula(n_in, n_out, b, bf, sm):
    L, H = b.bit_length() - 1, b // 2 + 1
    p, q = -(-n_out // b), -(-n_in // b)
    qs = -(-q // sm)
    c = hw_circulant.circulant_cost(
        n_in, n_out, b, spectrum_bits=16, twiddle_frac=16, bias_bits=12, butterflies=bf, lanes=sm
    )
    fwd = q * (b // bf + L * b // (2 * bf) + -(-H // bf))
    po = qs * H + 1 + L * b // (2 * bf)
    step = max(po + 1, b)
    latency = n_in + fwd + po + (p - 1) * step + (n_out - (p - 1) * b) + 1
    assert c.latency == latency == hw_circulant.circulant_output_edge(n_in, n_out, b, n_out - 1, bf, sm)
    release = (q - 1) * (b // bf + L * b // (2 * bf) + -(-H // bf)) + b // bf
    restart = max(fwd + po + 1, n_out - (p - 1) * b) + (p - 1) * step
    assert c.interval == max(restart, release + n_in)
    assert c.weight_rom_bits == p * H * qs * sm * 2 * 16 + (b // 2) * 2 * 18
    assert c.rom_bits == c.weight_rom_bits + n_out * 12
    assert hw_circulant.circulant_multiplies(n_in, n_out, b) == 3 * ((p + q) * L * b // 2 + p * q * H)
    assert CirculantSchedule(n_in, n_out, b, bf, sm).multipliers == 3 * max(bf, sm)
