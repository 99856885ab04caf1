"""The edge-by-edge timing model of a design whose graph branches (issue 27): forks, join FIFOs and
the add engine's two-input handshake, replayed one clock edge at a time like compiler/hw/timing.py
replays a chain (whose results, for chains, stay that module's: the backend calls this one only
for a design with a fork or a join).

The design as the Verilog backend wires it: every engine reads one stream per input port
(EngineSpec.inputs); a stream read by several engines goes through a fork (rtl/fork2.v, chained
for more than two readers: one beat offered to every branch, each branch's handshake held in a
register until all have taken it, no latency); the early input of every join waits in a FIFO
(rtl/fifo.v: in_ready = count < DEPTH, out_valid = count > 0, one edge of latency); the join
takes a pair when both inputs are valid and it has room (rtl/add.v, compiler/hw/add.PairJoin),
or one element of the input whose turn it is (rtl/concat.v, compiler/hw/concat.ChannelJoin: a
pixel's a-elements, then its b-elements). A join model's `in_readies(valid_a, valid_b)` gives
both readies; its `step` is told whether it took an element (a pair, or the due input's).
Each edge: valids forward (registered outputs, a fork's branches gated by their registers, a
FIFO's count), then readies backward (an engine's registered in_ready, a join's room and the
other input's valid, a FIFO's count, a fork's AND over its branches), then every register steps.

`dag_timing` streams DAG_FRAMES frames back to back with out_ready high (sim/test_design.py's
first phase) with unbounded FIFOs and records each FIFO's largest occupancy. Its depth is that,
or what the join's late branch can hold (`late_branch_holding`: a bound that keeps the fork
moving under any back-pressure, so the design cannot deadlock; for a concat in the early
input's elements and a pixel more, `concat.fifo_holding`) if larger, plus FIFO_MARGIN.
With that depth no FIFO ever refuses an element in the replay, so the design's cycles are
exactly the replay's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from compiler import hw
from compiler.hw.add import JoinStage
from compiler.hw.argmax import Argmax
from compiler.hw.base import EngineSpec, VerilogBackendError
from compiler.hw.concat import fifo_holding
from compiler.hw.design import DESIGN_INPUT
from compiler.hw.timing import _model_of, _work
from kernels.activation import TABLE_BUFFER, TableSchedule
from kernels.concat import ConcatSchedule
from kernels.conv2d import LineGeometry

LINE_PIPELINE = 4  # a line-buffered engine's read, product and accumulate registers (rtl/conv2d.v)

DAG_FRAMES = 3  # frames streamed back to back: frame 0 gives the latency, the last two the interval
# Slack above the bound: the fork lets one branch take a beat before the other, and the join's
# output FIFO (2 entries) holds pairs the late branch has already given up.
FIFO_MARGIN = 2


@dataclass(frozen=True)
class JoinFifo:
    """The FIFO in front of one input of a join: the early one, which waits for the other."""

    consumer: str  # the join's instance
    port: int  # its input: 0 (in_a) or 1 (in_b)
    source: str  # the instance (or "input") whose stream it buffers
    width: int  # bits of an element
    max_occupancy: int  # the most elements it held in the model's replay
    late_holding: int  # what the other branch can hold (late_branch_holding), in these elements
    depth: int  # max(max_occupancy, late_holding) + FIFO_MARGIN

    @property
    def instance(self) -> str:
        return f"{self.consumer}_fifo_{'ab'[self.port]}"


@dataclass(frozen=True)
class DagTiming:
    latency: int  # frame 0: first input accepted -> its output beat (through an empty design)
    interval: int  # between the last two frames' output beats
    fifos: tuple[JoinFifo, ...]
    frames: int = DAG_FRAMES


def is_dag(specs: list[EngineSpec]) -> bool:
    """Whether the design branches: a stream read twice, or an engine with several inputs."""
    sources = [src for s in specs for src in s.inputs]
    return len(sources) != len(set(sources)) or any(len(s.inputs) > 1 for s in specs)


def early_inputs(specs: list[EngineSpec]) -> dict[str, int]:
    """For each join, the input that arrives first (the one that waits in a FIFO): by the
    engines' latencies summed along each path from the design's input (the late one's tie: b)."""
    arrival = {DESIGN_INPUT: 0}
    early = {}
    for s in specs:
        times = [arrival[src] for src in s.inputs]
        assert s.cost is not None
        arrival[s.instance] = max(times) + s.cost.latency
        if len(times) > 1:
            early[s.instance] = 1 if times[1] <= times[0] else 0
    return early


def dag_timing(specs: list[EngineSpec], n_classes: int, frames: int = DAG_FRAMES) -> DagTiming:
    """Latency, interval and every join FIFO of a branching design (the module's docstring)."""
    early = early_inputs(specs)
    index = {s.instance: k for k, s in enumerate(specs)}
    nodes = tuple((s.stage, tuple(index.get(src, -1) for src in s.inputs)) for s in specs)
    ports = tuple((index[inst], port) for inst, port in early.items())
    accepted, outputs, peaks = _replay(nodes, ports, n_classes, frames)
    fifos = []
    for (node, port), peak in zip(ports, peaks):
        spec = specs[node]
        holding = join_fifo_holding(specs, spec, port)
        width = hw.engine(spec.engine).input_bits(spec)[port]
        depth = max(peak, holding) + FIFO_MARGIN
        fifos.append(JoinFifo(spec.instance, port, spec.inputs[port], width, peak, holding, depth))
    return DagTiming(outputs[0] - accepted[0], outputs[-1] - outputs[-2], tuple(fifos), frames)


def stage_holding(stage) -> int:
    """The most input elements an engine can have taken in without yet emitting what they make
    (a bound): a line-buffered engine's ring of rows and its output register, the elementwise
    engines' 2-entry FIFO, else (ROM-streaming engines, which double-buffer) two whole inputs."""
    if isinstance(stage, LineGeometry):
        return stage.ring_rows * stage.w * stage.c_in + stage.p_co + LINE_PIPELINE
    if isinstance(stage, (TableSchedule, JoinStage, ConcatSchedule)):
        return TABLE_BUFFER
    return 2 * stage.n_in


def join_fifo_holding(specs: list[EngineSpec], join: EngineSpec, early: int) -> int:
    """The deadlock bound of the FIFO in front of input `early` of `join`: what the late branch
    can hold; a concat's in its early input's elements, a pixel more (concat.fifo_holding)."""
    holding = late_branch_holding(specs, join, 1 - early)
    if isinstance(join.stage, ConcatSchedule):
        return fifo_holding(join.stage, early, holding, fork_elements(specs, join, 1 - early))
    return holding


def late_branch_holding(specs: list[EngineSpec], join: EngineSpec, late: int) -> int:
    """What the join's late branch can hold, in elements of the stream the two branches fork
    from: each engine's stage_holding scaled by the fork's elements per its input's. A FIFO of
    this depth in front of the early input is never full while the late branch waits for input
    (it holds at most what the late branch holds), so the fork never stops for it: no deadlock,
    whatever the back-pressure."""
    _, branch = _late_branch(specs, join, late)
    elements = fork_elements(specs, join, late)
    return sum(-(-stage_holding(s.stage) * elements // s.n_in) for s in branch)


def fork_elements(specs: list[EngineSpec], join: EngineSpec, late: int) -> int:
    """Elements per frame of the stream the join's two branches fork from."""
    fork, _ = _late_branch(specs, join, late)
    by_name = {s.instance: s for s in specs}
    return by_name[fork].n_out if fork in by_name else specs[0].n_in


def _late_branch(specs: list[EngineSpec], join: EngineSpec, late: int) -> tuple[str, list[EngineSpec]]:
    """The instance (or "input") where the join's two branches fork, and the late branch's
    engines from the join back to it (each path followed through first inputs)."""
    by_name = {s.instance: s for s in specs}

    def path(source: str) -> list[str]:
        names = []
        while source in by_name:
            names.append(source)
            source = by_name[source].inputs[0]
        return names + [source]

    early_path = set(path(join.inputs[1 - late]))
    late_path = path(join.inputs[late])
    fork = next(name for name in late_path if name in early_path)
    return fork, [by_name[name] for name in late_path[: late_path.index(fork)]]


@functools.lru_cache(maxsize=16)
def _replay(nodes: tuple, fifo_ports: tuple, n_classes: int, frames: int):
    """Stream `frames` frames back to back into the design (nodes: (stage, input source indices,
    -1 the design's input), in topological order; argmax after the last, out_ready high),
    unbounded FIFOs in front of `fifo_ports` ((node, port) pairs). Returns (edges of the input
    handshakes, edges of the output beats, each FIFO's largest occupancy)."""
    n = len(nodes)
    models = [_model_of(stage) for stage, _ in nodes] + [Argmax(n_classes)]
    # channels: one per engine input (argmax reads the last engine); source index -1 is the input
    channels = [(src, k, port) for k, (_, srcs) in enumerate(nodes) for port, src in enumerate(srcs)]
    channels.append((n - 1, n, 0))
    n_ch = len(channels)
    channel_of = {(dst, port): ch for ch, (_, dst, port) in enumerate(channels)}
    fifo_slot = [-1] * n_ch  # the channel's FIFO (index into fifo_ports), or -1
    for j, port in enumerate(fifo_ports):
        fifo_slot[channel_of[port]] = j
    src_of = [src + 1 for src, _, _ in channels]  # into `sv`: 0 the design's input, k + 1 engine k
    readers = [[ch for ch in range(n_ch) if src_of[ch] == s] for s in range(n + 1)]
    forked = [len(chs) > 1 for chs in readers]
    inputs_of = [[ch for ch in range(n_ch) if channels[ch][1] == k] for k in range(n + 1)]
    singles = [(k, chs[0]) for k, chs in enumerate(inputs_of) if len(chs) == 1]
    joins = [(k, chs[0], chs[1]) for k, chs in enumerate(inputs_of) if len(chs) == 2]
    steps = [(models[k].step, inputs_of[k][0], k + 1) for k in range(n) if len(inputs_of[k]) == 1]
    join_steps = [(models[k].step, a, b, k + 1) for k, a, b in joins]  # a pair, or the due input's element
    argmax, last_ch = models[n], inputs_of[n][0]
    count = [0] * len(fifo_ports)
    peak = [0] * len(fifo_ports)
    taken = [False] * n_ch  # a forked channel's branch took the current beat (rtl/fork2.v's a_done)
    chan = [(src_of[ch], fifo_slot[ch], forked[src_of[ch]]) for ch in range(n_ch)]
    special = [(ch, *chan[ch]) for ch in range(n_ch) if chan[ch][1] >= 0 or chan[ch][2]]  # fork or FIFO
    out_valids = [m.out_valid for m in models]
    single_readies = [(models[k].in_ready, ch) for k, ch in singles]
    total_in = nodes[0][0].n_in * frames
    work = sum(_work(stage) for stage, _ in nodes) + 2 * n_classes + 16 * n
    limit = 2 * frames * work + 64
    accepted: list[int] = []
    outputs: list[int] = []
    edge = 0
    pv, cv, cr = [False] * n_ch, [False] * n_ch, [False] * n_ch  # branch valid, reader's valid, its ready
    src_ready = [False] * (n + 1)
    while len(outputs) < frames:
        edge += 1
        if edge > limit:
            raise VerilogBackendError(
                f"the timing model of this branching design gave {len(outputs)} of {frames} outputs after "
                f"{limit} edges: it found no schedule (a bug of mpc's DAG timing model or FIFO sizing; "
                "please report it with the model)"
            )
        sv = [len(accepted) < total_in] + [valid() for valid in out_valids]
        for ch, (s, slot, fork) in enumerate(chan):  # valids
            pv[ch] = v = (sv[s] and not taken[ch]) if fork else sv[s]
            cv[ch] = v if slot < 0 else count[slot] > 0
        for ready, ch in single_readies:  # readies
            cr[ch] = ready()
        for k, a, b in joins:
            cr[a], cr[b] = models[k].in_readies(cv[a], cv[b])
        for s in range(n + 1):  # what a branch sees: the reader's ready, or an unbounded FIFO's
            chs = readers[s]
            if forked[s]:
                src_ready[s] = all(taken[ch] or fifo_slot[ch] >= 0 or cr[ch] for ch in chs)
            else:
                src_ready[s] = fifo_slot[chs[0]] >= 0 or cr[chs[0]]
        if sv[0] and src_ready[0]:
            accepted.append(edge)
        if argmax.out_valid():
            outputs.append(edge)
        for ch, s, slot, fork in special:
            if slot >= 0:
                count[slot] += int(pv[ch]) - int(cv[ch] and cr[ch])
                if count[slot] > peak[slot]:
                    peak[slot] = count[slot]
            if fork:
                took = pv[ch] and (slot >= 0 or cr[ch])
                taken[ch] = False if sv[s] and src_ready[s] else taken[ch] or took
        for step, ch, out in steps:
            step(cv[ch] and cr[ch], src_ready[out])
        for step, a, b, out in join_steps:
            step((cv[a] and cr[a]) or (cv[b] and cr[b]), src_ready[out])
        argmax.step(cv[last_ch] and cr[last_ch], True)
    return tuple(accepted), tuple(outputs), tuple(peak)
