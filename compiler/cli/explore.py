"""`mpc explore MODEL --data DATA --space SPACE -o EXPLORE`: every recipe of a space built
(compiler/explore/run.py); exit 1 if any point failed."""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler.cli.common import log_of, positive

HELP = "design-space exploration: build every recipe of a space (Ray tasks), Pareto set, plots"
DESCRIPTION = (
    "Build every point of SPACE.toml, a recipe in which any option may be a list of values "
    "to try (each list an axis of the grid; an option that is already a list, like passes, as a list of "
    "lists), and [explore] objectives = [...] to rank them by. Each point is a Ray task (compile, and "
    "simulate or audit where the objectives need it) into EXPLORE/points/<id>/; EXPLORE/results.csv and "
    ".json hold one row per point with every metric and the Pareto set, EXPLORE/index.html the plots. "
    "Points already built are skipped (a killed sweep resumes); a failed point is recorded and the sweep "
    "goes on (exit 1 at the end). See docs/explore.md."
)


def add_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("model", type=Path, help="the ONNX model (or a checkpoint folder, as for compile)")
    e.add_argument("--data", type=Path, required=True, metavar="DATA.npz", help="the data, as for compile")
    e.add_argument(
        "--space", type=Path, required=True, metavar="SPACE.toml", help="a recipe with lists as axes, and [explore]"
    )
    e.add_argument("-o", "--out", type=Path, required=True, metavar="EXPLORE", help="a new folder, or one to resume")
    e.add_argument(
        "--workers",
        type=positive("--workers"),
        metavar="N",
        help="points built at once (default: this machine's CPUs; with --address, the cluster's); "
        "1 builds them one by one in this process",
    )
    e.add_argument(
        "--address",
        metavar="RAY_ADDRESS",
        help="run the points on the Ray cluster at this address (HOST:PORT of `ray start --head`); EXPLORE, "
        "the model and the data must be at the same path on every node",
    )
    e.add_argument(
        "--budget",
        type=positive("--budget"),
        metavar="N",
        help="build at most N points, chosen by a multi-objective search (Optuna's MOTPE) instead of the grid",
    )
    e.add_argument("--quiet", action="store_true", help="print only errors and the summary")


def run(args) -> int:
    from compiler.explore.run import explore  # after parsing, so --help is instant

    results = explore(
        args.model,
        args.data,
        args.space,
        args.out,
        workers=args.workers,
        address=args.address,
        budget=args.budget,
        log=log_of(args),
        progress=not args.quiet,
    )
    objectives = results["objectives"]
    for row in results["points"]:
        if row["pareto"]:
            shown = ", ".join(f"{o['given']} {_figure(row['metrics'].get(o['key']))}" for o in objectives)
            print(f"Pareto: {row['folder']}: {shown}")
    failed = [r for r in results["points"] if r["status"] != "ok"]
    print(f"explore: {len(results['points'])} points, {len(failed)} failed; {args.out}/results.csv, index.html")
    return 1 if failed else 0


def _figure(v) -> str:
    return "n/a" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)
