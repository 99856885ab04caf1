"""The DAG timing model (compiler/hw/dag_timing.py) and the engine specs of a branching design
(compiler/hw/design.py): sources per input, the early input of each join, the FIFO depths, the
late branch's holding bound, and the add engine's plan (compiler/hw/add.py). Icarus measures the
same cycles in tests/compiler/backends/test_verilog_dag.py."""

import pytest

from benchmarks.cnn_graphs import build_cnn, conv, dense, flatten, global_avgpool
from benchmarks.residual_graphs import residual_cnn
from compiler import hw
from compiler.backends.verilog import VerilogBackendError, engine_specs
from compiler.hw import dag_timing
from compiler.hw.add import PairJoin, stream_elements
from compiler.hw.design import DESIGN_INPUT
from compiler.ir import Node
from compiler.passes.base import Context, get_pass
from kernels.add import AddSchedule


def _plan(graph, recipe=None):
    return get_pass("plan").run(graph, Context(recipe=recipe or {}, log=lambda *_: None, progress=False))


@pytest.fixture(scope="module")
def residual():
    return residual_cnn((2, 6, 6), channels=4)


def test_a_chain_is_no_dag_and_its_specs_read_each_previous_engine():
    graph = build_cnn((2, 6, 6), [conv(4), global_avgpool(), flatten(), dense(5)])
    specs = engine_specs(graph)
    assert not dag_timing.is_dag(specs)
    assert [s.inputs for s in specs] == [[DESIGN_INPUT], ["layer0"], ["layer1"]]


def test_residual_specs_name_both_sources_of_the_join(residual):
    specs = engine_specs(residual)
    assert dag_timing.is_dag(specs)
    assert [s.engine for s in specs] == ["conv", "conv", "add", "pool", "dense"]
    assert [s.inputs for s in specs] == [[DESIGN_INPUT], ["layer0"], ["layer1", "layer0"], ["layer2"], ["layer3"]]
    join = specs[2]
    assert join.n_in == join.n_out == 4 * 6 * 6 and join.out_shape == [4, 6, 6] and join.out_width == 8
    assert join.parameters == {
        "A_BITS": 8,
        "B_BITS": 8,
        "SHIFT_A": 0,
        "SHIFT_B": 0,
        "SHIFT": 0,
        "OUT_BITS": 8,
        "RELU": 1,
    }
    assert dag_timing.early_inputs(specs) == {"layer2": 1}  # the skip (b) arrives before the conv (a)


def test_fifo_depth_covers_the_replay_and_the_late_branch(residual):
    specs = engine_specs(residual)
    timing = dag_timing.dag_timing(specs, 5)
    (fifo,) = timing.fifos
    assert (fifo.consumer, fifo.port, fifo.source, fifo.width) == ("layer2", 1, "layer0", 8)
    ring = specs[1].stage.ring_rows
    assert ring == 4 and fifo.late_holding == ring * 6 * 4 + 1 + dag_timing.LINE_PIPELINE  # 4 rows of 6x4, P_CO, pipe
    # the skip waits while the conv reads the rows its first output needs: at least two image rows
    assert 2 * 6 * 4 <= fifo.max_occupancy <= fifo.late_holding
    assert fifo.depth == max(fifo.max_occupancy, fifo.late_holding) + dag_timing.FIFO_MARGIN
    assert timing.latency > timing.interval > 0 and timing.frames == dag_timing.DAG_FRAMES


def test_the_replay_pairs_every_element_and_keeps_the_chain_edges_without_a_join():
    """A chain replayed by the DAG model gives the chain model's edges (no fork, no join)."""
    graph = build_cnn((2, 6, 6), [conv(4, p_co=2), global_avgpool(), flatten(), dense(5)])
    specs = engine_specs(graph)
    nodes = tuple((s.stage, (k - 1,)) for k, s in enumerate(specs))
    accepted, outputs, peaks = dag_timing._replay(nodes, (), 5, 3)
    from compiler.hw.timing import stream_edges

    want_in, want_out = stream_edges([s.stage for s in specs], 5, 3)
    assert (list(accepted), list(outputs), peaks) == (want_in, want_out, ())


def test_two_blocks_and_a_skip_conv_each_get_a_fifo():
    specs = engine_specs(residual_cnn((2, 6, 6), channels=4, blocks=2, skip_conv=True))
    timing = dag_timing.dag_timing(specs, 5)
    assert [(f.consumer, f.source) for f in timing.fifos] == [("layer3", "layer2"), ("layer6", "layer5")]
    assert all(f.max_occupancy > 0 and f.depth > f.max_occupancy for f in timing.fifos)


def test_pair_join_takes_a_pair_only_when_both_are_valid():
    join = PairJoin(AddSchedule(4))
    assert join.in_readies(True, False) == (False, True)
    assert join.in_readies(False, False) == (False, False)
    join.step(True, False)
    join.step(True, False)
    assert join.in_readies(True, True) == (False, False)  # the output FIFO is full


def test_plan_gives_the_add_its_engine_and_raises_the_budget_to_its_elements(residual):
    unplanned = residual.copy()
    for node in unplanned.nodes:
        node.annotations = {}
    unplanned.meta.pop("planned")
    planned = _plan(unplanned, {"plan": {"cycle_budget": 10}})
    join = planned.node("b0_add")
    assert join.annotations["engine"] == "add" and "144 element pairs" in join.annotations["engine_reason"]
    assert stream_elements(planned, join.inputs[0]) == 4 * 6 * 6
    assert planned.meta["plan"]["cycle_budget"] >= 4 * 6 * 6
    assert hw.planned_engine(join).kind == "add"
    engine_specs(planned)  # the planned graph builds


def test_a_join_of_two_shapes_is_refused_by_name(residual):
    graph = residual.copy()
    join = graph.node("b0_add")
    join.inputs[1] = "x_q"  # the 2x6x6 input instead of the 4x6x6 skip
    with pytest.raises(VerilogBackendError, match=r"node 'b0_add': its input streams differ in shape or order"):
        engine_specs(graph)


def test_an_engine_whose_output_nobody_reads_is_refused(residual):
    graph = residual.copy()
    main = graph.node("b0_main")
    index = [n.name for n in graph.nodes].index("b0_main")
    dangling = Node("conv2d", "dangling", ["c0_act", *main.inputs[1:]], ["dangling_acc"], dict(main.attrs),
                    annotations=dict(main.annotations))  # fmt: skip
    graph.nodes.insert(index + 1, dangling)
    with pytest.raises(VerilogBackendError, match=r"layer 'dangling': its output is read by no engine"):
        engine_specs(graph)


def test_a_requantize_beside_another_reader_of_an_accumulator_is_refused_with_why():
    """lower requantizes an accumulator read by several layers once per format (two requantize
    nodes): no engine fuses either yet, and the refusal says why."""
    import numpy as np

    from compiler.data import Dataset
    from compiler.exec import torch as torch_exec
    from compiler.passes.lower import Lower
    from tests.compiler.passes.test_lower_dag import _fork_graph

    graph = _fork_graph()
    x = np.random.default_rng(1).normal(0, 1, (300, 6)).astype(np.float32)
    data = Dataset(x[:200], torch_exec.run(graph, x[:200]).argmax(1), x[200:], torch_exec.run(graph, x[200:]).argmax(1))
    lowered = Lower().apply(graph, Context(data=data, log=lambda *_: None, progress=False))
    with pytest.raises(
        VerilogBackendError, match=r"node 'rh': a requantize .* one of several readers of 'd1''s output"
    ):
        engine_specs(_plan(lowered))
