"""Runs a flow: each pass in order, a checkpoint after each, accuracy recorded where data is given.

Like FINN's builder, every step leaves a loadable artifact (`checkpoints/NN-<pass>/graph.json`
+ `params.npz`), so a build can be inspected or resumed at any step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from compiler.data import is_regression, row_errors
from compiler.ir import Graph
from compiler.passes.base import Context, PassError, get_pass, with_plan


@dataclass
class PassRecord:
    name: str
    seconds: float
    test_accuracy: float | None
    test_mse: float | None = None  # a regression's score after the pass (test_accuracy is then None)

    def to_dict(self) -> dict:
        record = {"name": self.name, "seconds": round(self.seconds, 3), "test_accuracy": self.test_accuracy}
        return record if self.test_mse is None else record | {"test_mse": self.test_mse}


def run_flow(
    graph: Graph, flow: list[str], ctx: Context, checkpoint_dir: Path | None = None, original: Graph | None = None
) -> tuple[Graph, list[PassRecord]]:
    """Run `flow` (a final lower gets plan after it) from `graph`; `original` (default `graph`) is
    the imported model written as checkpoint 00-import (a build resumed from a checkpoint)."""
    passes = [get_pass(name) for name in with_plan(flow)]
    missing = [p.name for p in passes if p.needs_data and ctx.data is None]
    if missing:
        raise PassError(f"pass(es) {', '.join(missing)} need training data: give --data DATA.npz")
    records = []
    if checkpoint_dir is not None:
        (original or graph).save(Path(checkpoint_dir) / "00-import")  # the original float model, as imported
    for index, p in enumerate(passes, start=1):
        ctx.log(f"[{index}/{len(passes)}] {p.name}")
        start = time.perf_counter()
        graph = p.run(graph, ctx)
        graph.validate()
        seconds = time.perf_counter() - start
        if ctx.data is not None and is_regression(graph):
            mse = test_mse(graph, ctx.data)
            records.append(PassRecord(p.name, seconds, None, mse))
            ctx.log(f"      {seconds:.1f}s, test MSE {mse:.6g}")
        else:
            accuracy = test_accuracy(graph, ctx.data) if ctx.data is not None else None
            records.append(PassRecord(p.name, seconds, accuracy))
            if accuracy is not None:
                ctx.log(f"      {seconds:.1f}s, test accuracy {accuracy:.4f}")
        if checkpoint_dir is not None:
            graph.save(Path(checkpoint_dir) / f"{index:02d}-{p.name}")
    return graph, records


def test_accuracy(graph: Graph, data) -> float:
    from compiler.exec import predict_classes  # executors import torch; load lazily

    return float((predict_classes(graph, data.x_test) == data.y_test).mean())


def test_mse(graph: Graph, data) -> float:
    """A regression's test MSE (graph.meta["task"]), float or integer graph alike."""
    from compiler.exec import predict_logits

    return float(row_errors(predict_logits(graph, data.x_test), data.y_test).mean())
