"""The edge-by-edge timing model (compiler/hw/timing.py) against the closed forms of the ROM-streaming
engines, the line-buffered engines' documented timing (the checker their cocotb benches use),
and cycle counts measured in Icarus (tests/e2e/test_end_to_end_cnn.py re-measures them)."""

import sys

import numpy as np
import pytest

from benchmarks.cnn_graphs import avgpool, build_cnn, conv, dense, flatten, global_avgpool, maxpool
from compiler.backends.verilog import engine_specs
from compiler.hw import circulant as hw_circulant
from compiler.hw import conv as hw_conv
from compiler.hw import dense as hw_dense
from compiler.hw import pool as hw_pool
from compiler.hw import sparse as hw_sparse
from compiler.hw import timing as hw_timing
from kernels.circulant_mac import CirculantSchedule
from kernels.conv2d import LineGeometry, conv_geometry
from kernels.dense_mac import dense_schedule
from kernels.pool2d import POOL_PIPELINE_EDGES, pool_geometry
from kernels.sparse_mac import encode_sparse, sparse_schedule
from sim.runner import SIM_DIR
from tests.sim.test_conv_rtl import CONV_CASES, POOL_CASES

sys.path.insert(0, str(SIM_DIR))  # sim/test_conv2d.py imports its neighbours by bare name
from test_conv2d import check_timing


def _dense(n_in, n_out, p, bits=8, acc=20):
    return hw_dense.dense_cost(n_in, n_out, p, bits, acc), dense_schedule(n_in, n_out, p)


def _sparse(n_in, n_out, p, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-8, 8, size=(n_out, n_in)) * (rng.random((n_out, n_in)) < 0.3)
    enc = encode_sparse(w, p, 3)
    return hw_sparse.sparse_cost(enc, 8, 20), sparse_schedule(enc)


def _circulant(n_in, n_out, b):
    return hw_circulant.circulant_cost(n_in, n_out, b, 16, 16, 12), CirculantSchedule(n_in, n_out, b)


@pytest.mark.parametrize(
    "chain",
    [
        [_dense(64, 32, 1), _dense(32, 16, 1), _dense(16, 10, 1)],
        [_dense(64, 32, 64), _dense(32, 16, 32), _dense(16, 10, 16)],
        [_dense(64, 32, 5), _dense(32, 16, 3), _dense(16, 10, 1)],
        [_sparse(64, 32, 2, 0), _sparse(32, 16, 1, 1), _dense(16, 10, 2)],
        [_dense(64, 32, 11), _circulant(32, 16, 8), _dense(16, 10, 1)],
        [_circulant(64, 32, 8), _circulant(32, 16, 8), _dense(16, 10, 1)],
        [_circulant(64, 32, 16), _circulant(32, 12, 4), _circulant(12, 10, 4)],
    ],
    ids=["dense-p1", "dense-full", "dense-mixed", "sparse", "dense-circulant", "circulant-first", "circulant-all"],
)
def test_model_equals_the_closed_forms_of_rom_streaming_chains(chain):
    costs, stages = zip(*chain)
    n_classes = stages[-1].n_out
    run = hw_timing.run_stream(tuple(stages), n_classes, 6)
    assert run.latency == hw_timing.design_latency(stages[0].n_in, list(costs))
    intervals = set(np.diff(run.outputs))
    assert intervals == {hw_timing.design_interval(stages[0].n_in, list(costs), n_classes)}


def _stage_of(case: dict, kind: str) -> LineGeometry:
    pads = (case["PAD_T"], case["PAD_L"], case["PAD_B"], case["PAD_R"])
    if kind == "pool":
        return pool_geometry((case["C"], case["H"], case["W"]), (case["KH"], case["KW"]), case["STRIDE"], pads)
    return conv_geometry(
        (case["C_IN"], case["H"], case["W"]),
        case["C_OUT"],
        (case["KH"], case["KW"]),
        case["STRIDE"],
        pads,
        case["P_CO"],
        case["P_CI"],
        case.get("P_K", 1),
    )


@pytest.mark.parametrize("case", CONV_CASES, ids=list(CONV_CASES))
def test_conv_model_replays_the_rtl_header_timing(case):
    """The model's handshakes satisfy rtl/conv2d.v's documented timing edge by edge, checked by
    sim/test_conv2d.py's own checker (which the cocotb bench applies to the RTL)."""
    params = CONV_CASES[case]
    accepted, outputs = hw_timing.stream_edges((_stage_of(params, "conv"),), None, params["frames"])
    check_timing(_stage_of(params, "conv"), accepted, outputs, params["frames"])


@pytest.mark.parametrize("case", POOL_CASES, ids=list(POOL_CASES))
def test_pool_model_replays_the_rtl_header_timing(case):
    params = POOL_CASES[case]
    accepted, outputs = hw_timing.stream_edges((_stage_of(params, "pool"),), None, params["frames"])
    check_timing(_stage_of(params, "pool"), accepted, outputs, params["frames"], pipeline=POOL_PIPELINE_EDGES)


def test_line_engine_cost_is_its_model_alone():
    stage = _stage_of(CONV_CASES["lenet_c2"], "conv")
    c = hw_conv.conv_cost(stage, 8, 20)
    assert c.compute_cycles == 8 * 8 * 2 * 25 * 2 == stage.row_cycles * stage.h_out
    # Not compute-bound across frames: the last output row holds KH = 5 rows of a KH + 1 row ring,
    # so the next frame's rows 1..4 load (4 rows of W*C_IN = 72 elements) only after it ends.
    assert c.interval == c.compute_cycles + 4 * 72
    assert c.weight_rom_bits == 2 * 25 * 2 * 8 * 3 * 8 and c.rom_bits == c.weight_rom_bits + 2 * 8 * 20
    run = hw_timing.run_stream((stage,), None, 1)
    assert c.latency == run.latency and c.tail == run.outputs[0] - run.last_inputs[0]
    pool = hw_pool.pool_cost(_stage_of(POOL_CASES["max_2x2_lenet"], "pool"))
    assert pool.rom_bits == 0 and pool.compute_cycles == 12 * 12 * 6 * 4


# Designs whose (latency, interval) Icarus measured (tests/e2e/test_end_to_end_cnn.py simulates them
# again): back-pressure between line-buffered engines, G < P_CO, stride > kernel, padded pools,
# reciprocal averages, a conv as the last layer, sparse and multi-dense tails, P_K > 1.
MEASURED = {
    "conv-pool-dense": (
        (2, 6, 6),
        [conv(4, p_co=4, p_ci=2), maxpool(2), flatten(), dense(10, multipliers=2)],
        3,
        (590, 324),
    ),
    "strided-avg-global": (
        (3, 7, 7),
        [conv(4, stride=2, pad=1, p_co=2, p_ci=3), avgpool(3, 1, 1), global_avgpool(), flatten(), dense(5)],
        3,
        (861, 576),
    ),
    "pool-first": (
        (2, 8, 8),
        [maxpool(2), conv(6, k=2, stride=2, pad=0, p_co=4, p_ci=2), flatten(), dense(4, multipliers=4)],
        3,
        (212, 128),
    ),
    "two-convs-two-denses": (
        (1, 9, 9),
        [
            conv(3, p_co=3),
            conv(5, p_co=1, p_ci=3),
            maxpool(3, 2, 1),
            flatten(),
            dense(12, multipliers=3),
            dense(6, multipliers=2),
        ],
        3,
        (4611, 3645),
    ),
    "conv-last": ((2, 4, 4), [conv(3, p_co=3, p_ci=2), conv(10, k=4, pad=0, p_co=2, p_ci=1), flatten()], 3, (411, 336)),
    "sparse-tail": (
        (4, 4, 4),
        [conv(8, p_co=8, p_ci=4), maxpool(2), flatten(), dense(10, multipliers=2, engine="sparse", sparsity=0.8)],
        3,
        (300, 144),
    ),
    "fast-into-slow": ((1, 6, 6), [conv(9, p_co=9), conv(4), flatten(), dense(3)], 5, (12236, 11664)),
    "narrow-groups": (
        (2, 5, 5),
        [
            conv(6, k=1, pad=0, p_co=4),
            maxpool(3, 1, 1),
            conv(4, k=2, stride=3, pad=0, p_co=2, p_ci=3),
            flatten(),
            dense(3, multipliers=8),
        ],
        5,
        (1475, 1350),
    ),
    "rectangular-asymmetric": (
        (3, 5, 7),
        [
            conv(4, k=(3, 2), pad=(1, 0, 0, 1), p_co=4, p_ci=3),
            avgpool(2, 2, (0, 1, 1, 0)),
            flatten(),
            dense(7, multipliers=7),
        ],
        5,
        (323, 189),
    ),
    "pools-first": (
        (1, 8, 8),
        [avgpool(3, 1, 1), maxpool(2, 2, 1), conv(5, p_co=5), global_avgpool(), flatten(), dense(10, multipliers=5)],
        5,
        (858, 576),
    ),
    "wide-fast-dense": (
        (2, 6, 6),
        [conv(16, p_co=16, p_ci=2), maxpool(2), flatten(), dense(2, multipliers=48)],
        5,
        (817, 576),
    ),
    # kernel positions in parallel: 5 of 25 (LeNet's conv1 plan), 4 of 9 with a partial last step
    "kernel-positions": (
        (1, 12, 12),
        [
            conv(6, k=5, pad=0, p_co=2, p_k=5),
            maxpool(2),
            conv(4, p_co=2, p_ci=3, p_k=4),
            flatten(),
            dense(5, multipliers=4),
        ],
        3,
        (1309, 1008),
    ),
    # all 9 positions and both channels in one read: G = 1 < P_CO = 3, the output register paces
    "all-positions-narrow-groups": (
        (2, 6, 6),
        [conv(6, p_co=3, p_ci=2, p_k=9), avgpool(2), flatten(), dense(4, multipliers=2)],
        5,
        (431, 216),
    ),
}


@pytest.mark.parametrize("name", MEASURED, ids=list(MEASURED))
def test_model_gives_the_cycles_icarus_measured(name):
    shape, layers, seed, measured = MEASURED[name]
    specs = engine_specs(build_cnn(shape, layers, seed=seed))
    stages = [s.stage for s in specs]
    assert hw_timing.pipeline_cycles(stages, specs[-1].n_out) == measured
    run = hw_timing.run_stream(tuple(stages), specs[-1].n_out, hw_timing.STEADY_FRAMES)
    assert set(np.diff(run.outputs)) == {measured[1]}  # settled from the first frame: the mean is the same


def test_a_hung_pipeline_is_reported_not_looped():
    with pytest.raises(RuntimeError, match="hung"):  # argmax waits for a third logit that never comes
        hw_timing.stream_edges((dense_schedule(4, 2, 1),), 3, 1)
