"""plan: hardware-aware choice of an engine and its parallelism for every layer of an integer graph.

Runs after lower, on the integer graph (so re-planning from a `NN-lower` checkpoint needs no
recalibration). The largest layer, run by its default engine with `multipliers` multipliers,
sets the cycle budget T of a balanced pipeline (a block-circulant layer: its FFT engine's
interval with that many multipliers, compiler/hw/circulant.py), or `cycle_budget` gives T
directly; engines with a fixed schedule (pool, activation, add) raise T to their interval, since a
layer finishing faster would only wait. T is one budget for the whole graph, so in a graph that
branches the engines of both branches of a fork are balanced to the same T (the design's interval
is the slowest engine on any branch). Every layer then gets, from each engine that computes
its op (compiler.hw.engines_for), the cheapest configuration meeting T, and where several
engines compete (dense or sparse) the op's chooser picks one
(compiler.hw.sparse.choose_dense_or_sparse). Recipe per-layer `multipliers` /
`engine` override the choice. The result is the typed plan of compiler/hw/registry.py:
`engine` and that engine's plan fields on every engine node, `meta["planned"]`, checked by
Graph.validate.

Options live in `[plan]`; recipes written before this pass existed gave `multipliers` and
`engine` in `[lower]`, which still works (Pass.legacy_table).
"""

from __future__ import annotations

from compiler import hw
from compiler.ir import Graph
from compiler.passes.base import Option, Pass, PassError, int_in, one_of, register


@register
class Plan(Pass):
    name = "plan"
    takes = "integer"
    hardware_only = True  # engines and parallelism: the integer graph's numbers stay as lower left them
    legacy_table = "lower"
    options = {
        "multipliers": Option(
            16,
            int_in(1, 4096),
            "parallel multipliers of the largest layer on its default engine (dense; a block-circulant "
            "layer's FFT engine: 3 per complex multiplier): sets the cycle budget every layer is balanced "
            "to; per layer: that layer's count (circulant: rounded down to a multiple of 3)",
            per_layer=True,
        ),
        "cycle_budget": Option(
            0,
            int_in(0, 1 << 30),
            "cycles per vector every layer must meet, instead of the budget `multipliers` sets (0): each "
            "layer then gets the fewest multipliers within it (raised to a fixed-schedule engine's interval)",
        ),
        "engine": Option(
            "auto",
            one_of("auto", "dense", "sparse"),
            "hardware engine: auto gives block-circulant layers (circulant pass) the FFT engine and "
            "picks sparse for the others where it needs fewer ROM bits and no more cycles; dense or "
            "sparse on a block-circulant layer computes its exact product with that engine instead "
            "(read by lower, which then makes it a dense layer)",
            per_layer=True,
        ),
        "rom_protection": Option(
            "none",
            one_of("none", "parity", "secded"),
            "code on every weight, index and bias ROM word (kernels/rom_protect.py): parity detects a flipped "
            "bit, secded corrects one and detects two; the design raises its fault output on a detected error "
            "(docs/security.md)",
        ),
        "rom_protection_unit": Option(
            "word",
            one_of("word", "weight"),
            "what one code covers: a whole ROM word (fewest check bits), or each weight (lane) of a word "
            "(more check bits; several flipped weights of one word are each corrected)",
        ),
    }

    def apply(self, graph: Graph, ctx) -> Graph:
        planned = graph.copy()
        largest = ctx.options(self.name)["multipliers"]
        nodes = [n for n in planned.nodes if n.op in hw.engine_ops()]
        given = ctx.options(self.name)["cycle_budget"]
        budget = cycle_budget(planned, nodes, largest, given)
        try:
            for node in nodes:
                node.annotations.update(self._plan_node(planned, node, ctx, budget, largest))
        except hw.PlanError as e:
            raise PassError(str(e)) from None
        opts = ctx.options(self.name)
        protection = {"rom_protection": opts["rom_protection"], "rom_protection_unit": opts["rom_protection_unit"]}
        planned.meta.update(planned=True, plan={"multipliers": largest, "cycle_budget": budget} | protection)
        return planned

    def _plan_node(self, graph: Graph, node, ctx, budget: int, largest: int) -> dict:
        opts, given = ctx.layer_options(self.name, node.name), ctx.layer_given(self.name, node.name)
        forced = opts["engine"] if opts["engine"] != "auto" else None
        fixed = given.get("multipliers")
        candidates = hw.engines_for(node.op)
        if forced and forced not in [e.kind for e in candidates]:
            refuse = getattr(candidates[0], "refuse", None)
            raise PassError(
                refuse(node, forced)
                if refuse
                else f"plan: layer {node.name!r} ({node.op}) cannot run on a {forced} engine "
                f"(engines: {', '.join(e.kind for e in candidates)})"
            )
        planned = {e.kind: e.plan(graph, node, budget, fixed, largest) for e in candidates}
        if len(planned) == 1:
            return next(iter(planned.values())).annotations
        return hw.registry.CHOOSERS[node.op](graph, node, planned, budget, forced)


def cycle_budget(graph: Graph, nodes, largest: int, given: int = 0) -> int:
    """`given`, or else the slowest layer's cycles with `largest` multipliers on its default
    engine; raised to the interval of every fixed-schedule engine."""
    cycles = [given]
    for node in nodes:
        default = hw.engines_for(node.op)[0]
        for value in (
            None if given else default.budget_cycles(graph, node, largest),
            default.fixed_interval(graph, node),
        ):
            if value is not None:
                cycles.append(value)
    return max(cycles)
