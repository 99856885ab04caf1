"""The edge-by-edge timing model of a design whose graph branches (issue 27): forks, join FIFOs and
the add engine's two-input handshake, replayed one clock edge at a time like compiler/hw/timing.py
replays a chain (whose results, for chains, stay that module's: the backend calls this one only
for a design with a fork or a join).

The design as the Verilog backend wires it: every engine reads one stream per input port
(EngineSpec.inputs); a stream read by several engines goes through a fork (rtl/fork2.v, chained
for more than two readers: one beat offered to every branch, each branch's handshake held in a
register until all have taken it, no latency); the early input of every join waits in a FIFO
(rtl/fifo.v: in_ready = count < DEPTH, out_valid = count > 0, one edge of latency); the join
(rtl/add.v, compiler/hw/add.PairJoin) takes a pair when both inputs are valid and it has room.
Each edge: valids forward (registered outputs, a fork's branches gated by their registers, a
FIFO's count), then readies backward (an engine's registered in_ready, a join's room and the
other input's valid, a FIFO's count, a fork's AND over its branches), then every register steps.

`dag_timing` streams DAG_FRAMES frames back to back with out_ready high (sim/test_design.py's
first phase) with unbounded FIFOs, and once more with the design's output stalled from the start
(every buffer upstream fills); each FIFO's depth is the larger of its two maximum occupancies
plus FIFO_MARGIN. With that depth no FIFO ever refuses an element in the first run, so the
design's cycles are exactly that run's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from compiler import hw
from compiler.hw.argmax import Argmax
from compiler.hw.base import EngineSpec
from compiler.hw.design import DESIGN_INPUT
from compiler.hw.timing import _model_of, _work

DAG_FRAMES = 3  # frames streamed back to back: frame 0 gives the latency, the last two the interval
# Slack above the largest occupancy the two replays reach: the fork may let one branch take a beat
# before the other, and a stalled output lets each engine's output registers fill one beat more.
FIFO_MARGIN = 2


@dataclass(frozen=True)
class JoinFifo:
    """The FIFO in front of one input of a join: the early one, which waits for the other."""

    consumer: str  # the join's instance
    port: int  # its input: 0 (in_a) or 1 (in_b)
    source: str  # the instance (or "input") whose stream it buffers
    width: int  # bits of an element
    max_occupancy: int  # the most elements it held in the model's replays
    depth: int  # max_occupancy + FIFO_MARGIN

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
    accepted, outputs, peaks = _replay(nodes, ports, n_classes, frames, True)
    _, _, stalled = _replay(nodes, ports, n_classes, 2, False)
    fifos = []
    for (node, port), peak, peak_stalled in zip(ports, peaks, stalled):
        spec = specs[node]
        occupancy = max(peak, peak_stalled)
        source = spec.inputs[port]
        width = hw.engine(spec.engine).input_bits(spec)[port]
        fifos.append(JoinFifo(spec.instance, port, source, width, occupancy, occupancy + FIFO_MARGIN))
    return DagTiming(outputs[0] - accepted[0], outputs[-1] - outputs[-2], tuple(fifos), frames)


@functools.lru_cache(maxsize=16)
def _replay(nodes: tuple, fifo_ports: tuple, n_classes: int, frames: int, out_ready: bool):
    """Stream `frames` frames into the design (nodes: (stage, input source indices, -1 the
    design's input), in topological order; argmax after the last), unbounded FIFOs in front of
    `fifo_ports` ((node, port) pairs). With out_ready the run ends at the last output; without,
    the output is stalled and the run lasts until every buffer upstream has had time to fill.
    Returns (edges of the input handshakes, edges of the output beats, each FIFO's peak)."""
    n = len(nodes)
    models = [_model_of(stage) for stage, _ in nodes] + [Argmax(n_classes)]
    # channels: one per engine input (argmax reads the last engine); source index -1 is the input
    channels = [(src, k, port) for k, (_, srcs) in enumerate(nodes) for port, src in enumerate(srcs)]
    channels.append((n - 1, n, 0))
    readers: list[list[int]] = [[] for _ in range(n + 1)]  # by source + 1
    for ch, (src, _, _) in enumerate(channels):
        readers[src + 1].append(ch)
    inputs_of: list[list[int]] = [[] for _ in range(n + 1)]
    for ch, (_, dst, _) in enumerate(channels):
        inputs_of[dst].append(ch)
    channel_of = {(dst, port): ch for ch, (_, dst, port) in enumerate(channels)}
    fifo_slot = {channel_of[fp]: j for j, fp in enumerate(fifo_ports)}  # channel -> its FIFO
    count = [0] * len(fifo_ports)
    peak = [0] * len(fifo_ports)
    taken = [False] * len(channels)
    n_ch = len(channels)
    total_in = nodes[0][0].n_in * frames
    work = sum(_work(stage) for stage, _ in nodes) + 2 * n_classes + 16 * n
    limit = 2 * frames * work + 64 if out_ready else frames * work + 64
    accepted: list[int] = []
    outputs: list[int] = []
    edge = 0
    pv = [False] * n_ch  # producer side of a channel (after the fork), consumer side, readies
    cv = [False] * n_ch
    cr = [False] * n_ch
    pr = [False] * n_ch
    src_ready = [False] * (n + 1)
    while len(outputs) < frames if out_ready else edge < limit:
        edge += 1
        if edge > limit:
            raise RuntimeError(f"DAG timing model: {len(outputs)} of {frames} outputs after {limit} edges (hung)")
        sv = [len(accepted) < total_in] + [m.out_valid() for m in models]
        for ch in range(n_ch):
            pv[ch] = sv[channels[ch][0] + 1] and not taken[ch]
            slot = fifo_slot.get(ch)
            cv[ch] = count[slot] > 0 if slot is not None else pv[ch]
        for k in range(n + 1):
            chs = inputs_of[k]
            if len(chs) == 1:
                cr[chs[0]] = models[k].in_ready()
            else:
                ra, rb = models[k].in_readies(cv[chs[0]], cv[chs[1]])
                cr[chs[0]], cr[chs[1]] = ra, rb
        for ch in range(n_ch):
            pr[ch] = True if ch in fifo_slot else cr[ch]
        for s in range(n + 1):
            src_ready[s] = all(pr[ch] or taken[ch] for ch in readers[s])
        if sv[0] and src_ready[0]:
            accepted.append(edge)
        if out_ready and models[n].out_valid():
            outputs.append(edge)
        for ch in range(n_ch):
            src = channels[ch][0] + 1
            produced = pv[ch] and pr[ch]
            slot = fifo_slot.get(ch)
            if slot is not None:
                count[slot] += int(produced) - int(cv[ch] and cr[ch])
                peak[slot] = max(peak[slot], count[slot])
            taken[ch] = False if sv[src] and src_ready[src] else taken[ch] or produced
        for k in range(n + 1):
            ch = inputs_of[k][0]
            models[k].step(cv[ch] and cr[ch], src_ready[k + 1] if k < n else out_ready)
    return tuple(accepted), tuple(outputs), tuple(peak)
