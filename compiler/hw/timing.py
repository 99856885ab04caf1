"""Edge-by-edge model of a generated design's stream handshakes: its cycles without simulating it.

The ROM-streaming engines (dense, sparse, circulant) have closed-form latency and interval
(`design_latency`, `design_interval` below, from their kernels' schedules). The line-buffered
engines (rtl/conv2d.v, rtl/pool2d.v) have none: they load while they compute, their in_ready
depends on when rows are released, and back-pressure from a slower engine downstream stalls
them. So for a design with such engines the cost model replays the documented control of every
engine, one clock edge at a time: counters, valid bits and buffer occupancy, never data. Each
engine module registers the model of its stage type (`register_model`); the models mirror their
module's control registers (names as in the RTL); the design runs as sim/test_design.py drives
it (inputs back to back, out_ready high), which is what `mpc simulate` measures.

A stage is a frozen schedule from kernels/ (hashable, so runs are cached); `run_stream` chains
their models, ending in rtl/argmax.v.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compiler.hw.argmax import ARGMAX_EDGES, Argmax
from compiler.hw.base import EngineCost

# stage type -> (model factory, edges one frame keeps the engine busy)
_MODELS: dict[type, tuple[Callable, Callable[[Any], int]]] = {}


def register_model(stage_type: type, model: Callable, work: Callable[[Any], int]) -> None:
    _MODELS[stage_type] = (model, work)


def _model_of(stage):
    try:
        return _MODELS[type(stage)][0](stage)
    except KeyError:
        raise TypeError(f"no timing model registered for {type(stage).__name__}") from None


def _work(stage) -> int:
    return _MODELS[type(stage)][1](stage)


# ------------------------------------------------------------------------ closed forms
def design_latency(first_n_in: int, costs: list[EngineCost]) -> int:
    """Cycles from the first input beat to the output beat, through an empty pipeline: the
    first layer loads its inputs (first_n_in - 1 edges after the first), each layer's last
    output is its `tail` after its last input (which is the previous layer's last output), and
    argmax registers the result (one edge)."""
    return first_n_in + sum(c.tail for c in costs)


def design_interval(first_n_in: int, costs: list[EngineCost], n_classes: int) -> int:
    """Steady-state cycles between inferences: the slowest stage (argmax takes N + 1).

    A dense/sparse engine double-buffers its input, so its stage takes its compute cycles. A
    circulant engine has one input buffer, free `input_release` edges after its compute starts
    (its last forward fill); until then the engine upstream holds its next first output, and the
    loading then lasts as long as the upstream's output span (n_in - 1 edges for the first
    layer, fed by the host one input per cycle). So its stage takes its `restart` (compute start
    to the earliest next one), or the release plus one edge plus that loading if longer."""
    stages = [first_n_in, n_classes + ARGMAX_EDGES]
    for k, c in enumerate(costs):
        release = getattr(c, "input_release", None)  # a circulant engine (compiler/hw/circulant.py)
        if release is not None:
            loading = max(c.latency - c.compute_cycles - 1, costs[k - 1].output_span if k else 0)
            stages.append(max(getattr(c, "restart", c.compute_cycles), release + 1 + loading))
        else:
            stages.append(c.compute_cycles)
    return max(stages)


# ------------------------------------------------------------------------ the chain
@dataclass(frozen=True)
class StreamRun:
    first_inputs: tuple[int, ...]  # edge at which each frame's first input was accepted
    last_inputs: tuple[int, ...]  # ... its last input
    first_outputs: tuple[int, ...]  # edge of each frame's first output handshake
    outputs: tuple[int, ...]  # ... its last (with argmax: the one output beat)

    @property
    def latency(self) -> int:
        """Frame 0: first input accepted -> its output, as sim/test_design.py measures it."""
        return self.outputs[0] - self.first_inputs[0]


def stream_edges(stages, n_classes: int | None, frames: int) -> tuple[list[int], list[int]]:
    """Stream `frames` frames back to back through the engines (then rtl/argmax.v collecting
    `n_classes` logits, unless None), out_ready high: the edges of every input handshake and
    of every output handshake of the last engine (with argmax: one per frame)."""
    models = [_model_of(s) for s in stages]
    if n_classes is not None:
        models.append(Argmax(n_classes))
    per_frame_out = 1 if n_classes is not None else stages[-1].n_out
    total_in, total_out = stages[0].n_in * frames, per_frame_out * frames
    # Even with no overlap at all each frame passes every engine in its own work: beyond that, hung.
    limit = 2 * frames * (sum(_work(s) for s in stages) + 2 * (n_classes or 0) + 16 * len(stages)) + 64
    accepted: list[int] = []
    outputs: list[int] = []
    edge = 0
    while len(outputs) < total_out:
        edge += 1
        if edge > limit:
            raise RuntimeError(
                f"timing model: {len(outputs)} of {total_out} outputs after {limit} edges (a hung pipeline)"
            )
        readies = [m.in_ready() for m in models] + [True]
        valids = [len(accepted) < total_in] + [m.out_valid() for m in models]
        if valids[0] and readies[0]:
            accepted.append(edge)
        if valids[-1]:
            outputs.append(edge)
        for k, m in enumerate(models):
            m.step(valids[k] and readies[k], readies[k + 1])
    return accepted, outputs


@functools.lru_cache(maxsize=64)
def run_stream(stages: tuple, n_classes: int | None, frames: int) -> StreamRun:
    """`stream_edges`, summarized per frame."""
    accepted, outputs = stream_edges(stages, n_classes, frames)
    n_in, n_out = len(accepted) // frames, len(outputs) // frames
    return StreamRun(
        tuple(accepted[::n_in]),
        tuple(accepted[n_in - 1 :: n_in]),
        tuple(outputs[::n_out]),
        tuple(outputs[n_out - 1 :: n_out]),
    )


STEADY_FRAMES = 8  # frames streamed back to back to reach a design's steady state


def steady_interval(run: StreamRun) -> int:
    """Cycles between the last two outputs: the steady state once the buffers have filled."""
    return run.outputs[-1] - run.outputs[-2]


def pipeline_cycles(stages: list, n_classes: int, frames: int = STEADY_FRAMES) -> tuple[int, int]:
    """(latency, steady-state interval) of a whole design by the edge-by-edge model: what
    sim/test_design.py measures (first sample through an empty pipeline; then back to back).

    For designs of dense, sparse and circulant engines only this equals design_latency and
    design_interval; with line-buffered engines, whose loading overlaps their compute and
    which back-pressure each other, there is no closed form."""
    run = run_stream(tuple(stages), n_classes, frames)
    return run.latency, steady_interval(run)
