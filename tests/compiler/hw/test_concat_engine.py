"""The concat engine (compiler/hw/concat.py): its timing model's turns (a pixel's a-elements,
then its b-elements), its FIFO bound, its plan and spec on tests/compiler/ops/test_concat.py's
graph, and the DAG model's FIFO for it. Icarus measures the same cycles in
tests/compiler/backends/test_verilog_dag.py."""

import pytest

from compiler.backends.verilog import engine_specs
from compiler.hw import dag_timing
from compiler.hw.concat import ChannelJoin, fifo_holding
from compiler.passes.base import Context, get_pass
from kernels.concat import ConcatSchedule, concat_stream_order


def test_channel_join_takes_each_input_only_in_its_turn():
    join = ChannelJoin(ConcatSchedule((2, 1), 3))
    taken = []
    for _ in range(9):  # both inputs always valid, the output always read
        ready_a, ready_b = join.in_readies(True, True)
        assert ready_a != ready_b
        taken.append(0 if ready_a else 1)
        join.step(True, True)
    assert taken == [i for i, _ in concat_stream_order([2, 1], 3)]


def test_channel_join_stops_with_a_full_output_fifo():
    join = ChannelJoin(ConcatSchedule((1, 1), 4))
    join.step(True, False)
    join.step(True, False)
    assert join.in_readies(True, True) == (False, False)
    join.step(False, True)
    assert join.in_readies(True, True) == (True, False)  # a's turn again (one a, one b taken)


def test_fifo_holding_is_the_late_branch_in_pixels_and_one_pixel_more():
    schedule = ConcatSchedule((3, 2), 16)  # fork stream: 16 pixels of 1 element
    assert fifo_holding(schedule, 1, 5, 16) == (5 + 1) * 2
    assert fifo_holding(schedule, 0, 5, 32) == (3 + 1) * 3  # 5 of 32 fork elements: 3 pixels (ceil)
    assert fifo_holding(ConcatSchedule((7, 1), 1), 1, 40, 64) == 2  # a vector: all of b, and b again


@pytest.fixture(scope="module")
def planned():
    from tests.compiler.ops.test_concat import integer_graph

    graph = integer_graph()
    for node in graph.nodes:  # the formats lower writes and the hand-built graph leaves out
        if node.op in ("conv2d", "dense"):
            node.attrs.setdefault("weight_format", {"bits": 8, "frac": 6})
            node.attrs.setdefault("input_format", {"bits": 8, "frac": 2 if node.op == "dense" else 5})
    return get_pass("plan").run(graph, Context(recipe={}, log=lambda *_: None, progress=False))


def test_plan_and_spec_of_a_concat_of_two_images(planned):
    node = planned.node("j")
    assert node.annotations["engine"] == "concat" and "80 elements" in node.annotations["engine_reason"]
    specs = engine_specs(planned)
    spec = specs[2]
    assert (spec.engine, spec.inputs, spec.n_in, spec.n_out, spec.out_shape) == (
        "concat",
        ["layer0", "layer1"],
        80,
        80,
        [5, 4, 4],
    )
    assert spec.stage == ConcatSchedule((3, 2), 16)
    assert spec.parameters == dict(A_BITS=8, B_BITS=8, C_A=3, C_B=2, SHIFT_A=2, SHIFT_B=0, OUT_BITS=8)
    assert spec.cost.rom_bits == 0 and spec.cost.latency == 80


def test_the_dag_model_sizes_the_fifo_of_the_early_input_in_its_elements(planned):
    specs = engine_specs(planned)
    timing = dag_timing.dag_timing(specs, 5)
    (fifo,) = timing.fifos
    assert (fifo.consumer, fifo.port, fifo.source, fifo.width) == ("layer2", 1, "layer1", 8)
    late = dag_timing.late_branch_holding(specs, specs[2], 0)  # conv c1's holding, in input elements
    assert fifo.late_holding == fifo_holding(specs[2].stage, 1, late, 16) > late
    assert fifo.depth == max(fifo.max_occupancy, fifo.late_holding) + dag_timing.FIFO_MARGIN
    assert timing.latency > timing.interval >= 80
