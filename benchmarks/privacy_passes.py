"""The dp_sgd and mia_quant passes on Location, measured without shadows (docs/audit.md).

    python benchmarks/privacy_passes.py dp_sgd      # under 2 min on one core
    python benchmarks/privacy_passes.py mia_quant   # about 1 min

Both use benchmarks/privacy.py's Location target (2000 members / 2000 non-members, seed 0; MLP
446-128-30, Adam, 60 epochs) and print markdown rows: test and train accuracy, and the
loss-threshold AUC over all 4000 points (`compiler.audit.signals.loss`). mia_quant also gets the
AUC over the rows it trained on (it holds 45% of x_train out). The adaptive, shadow-model audit
of both passes is benchmarks/privacy_frontier.py.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.datasets import MlpRecipe, default_data_root, load_location, member_split, train_onnx_mlp
from compiler import passes  # noqa: F401  (registers the passes)
from compiler.audit.signals import loss
from compiler.data import Dataset, load_data
from compiler.exec import predict_logits
from compiler.frontend.onnx import load_onnx
from compiler.ir import Graph
from compiler.passes.base import Context, get_pass
from compiler.passes.mia_quant import split_train

QUIET = {"log": lambda *_: None, "progress": False}
N = 2000


def location_target(work: Path) -> tuple[Graph, Dataset]:
    x, y = load_location(default_data_root())
    split = member_split(x, y, N, N, seed=0)
    model, data_path = train_onnx_mlp(split, work, "location", MlpRecipe(hidden=(128,), epochs=60), n_classes=30)
    data = load_data(data_path, (446,), 30)
    return run_pass("canonicalize", load_onnx(model), data), data


def run_pass(name: str, graph: Graph, data: Dataset, seed: int = 0, **options) -> Graph:
    return get_pass(name).run(graph, Context(data=data, recipe={name: options}, seed=seed, **QUIET))


def scored(graph: Graph, data: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits, membership score = -loss, is_member) over x_train then x_test."""
    xs, ys = np.concatenate([data.x_train, data.x_test]), np.concatenate([data.y_train, data.y_test])
    logits = predict_logits(graph, xs)
    return logits, -loss(logits, ys), np.arange(len(xs)) < len(data.x_train)


def dp_sgd_rows(graph: Graph, data: Dataset) -> None:
    ys = np.concatenate([data.y_train, data.y_test])

    def row(name: str, g: Graph, seconds: float) -> None:
        logits, score, member = scored(g, data)
        acc = lambda m: (logits[m].argmax(1) == ys[m]).mean()
        auc = roc_auc_score(member, score)
        print(f"| {name} | {acc(~member):.1%} | {acc(member):.1%} | {auc:.3f} | {seconds:.0f} s |", flush=True)

    print("| model | test acc | train acc | loss AUC | seconds |\n|---|---|---|---|---|")
    row("no DP (benchmark target: Adam, 60 epochs)", graph, 0)
    for eps in (1.0, 4.0, 16.0, math.inf):
        for seed in (0, 1):
            start = time.perf_counter()
            g = run_pass("dp_sgd", graph, data, seed=seed, epsilon=eps)
            m = g.meta["dp_sgd"]
            spent = m["epsilon"] if m["epsilon"] == "inf" else f"{m['epsilon']:.4g}"
            name = f"ε {eps:g} seed {seed} (spent {spent}, σ {m['noise_multiplier']:.3f})"
            row(name, g, time.perf_counter() - start)


def mia_quant_rows(graph: Graph, data: Dataset) -> None:
    defended = run_pass("mia_quant", graph, data)
    meta = defended.meta["mia_quant"]
    bits = meta["bits"]
    control = run_pass(  # same split and training, no membership term, the defaults' widths
        "mia_quant", graph, data, lambdas=[0.0], per_layer_search=False, max_accuracy_drop=1.0,
        layers={n: {"bits": [b]} for n, b in bits.items()},
    )  # fmt: skip
    trained_on = split_train(N, 0.2, 0.25, seed=0).members

    def row(name: str, g: Graph, rows_trained: np.ndarray) -> None:
        logits, score, member = scored(g, data)
        fit = np.concatenate([rows_trained, np.arange(N, 2 * N)])
        accuracy = np.mean(logits[N:].argmax(1) == data.y_test)
        print(
            f"| {name} | {100 * accuracy:.1f}% | {roc_auc_score(member, score):.3f} "
            f"| {roc_auc_score(member[fit], score[fit]):.3f} |",
            flush=True,
        )

    every = np.arange(N)
    print(f"chosen: lambda {meta['lambda_']:g}, bits {bits}")
    print("| model | test acc | loss AUC | loss AUC (rows trained on) |\n|---|---|---|---|")
    row("float model (as imported)", graph, every)
    row("plain PTQ", run_pass("lower", graph, data, layers={n: {"weight_bits": b} for n, b in bits.items()}), every)
    row("mia_quant λ 0 (control)", run_pass("lower", control, data), trained_on)
    row("mia_quant (defaults)", run_pass("lower", defended, data), trained_on)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("dp_sgd", "mia_quant"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        graph, data = location_target(Path(work))
        (dp_sgd_rows if args.which == "dp_sgd" else mia_quant_rows)(graph, data)


if __name__ == "__main__":
    main()
