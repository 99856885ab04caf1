"""The privacy-utility frontier of mpc's defenses and compressions, audited adaptively.

    python benchmarks/privacy_frontier.py --set location [--shadows 16] [--out frontier/]
    python benchmarks/privacy_frontier.py --set mnist    [--shadows 16] [--out frontier/]
    python benchmarks/privacy_frontier.py --render frontier/location.json frontier/mnist.json

One target MLP per data set (trained to overfit a small member set, like benchmarks/privacy.py),
then one build per point of each sweep:

- plain PTQ: `lower` with 8-, 4-, 3- and 2-bit weights;
- ADMM pruning at 50%, 80%, 95% (irregular, every layer);
- privacy_admm (Wang et al. 2021) at 80% sparsity, lambda 1, 3, 10;
- minmax (Nasr et al. 2018), lambda 1, 3, 10;
- dp_sgd (Abadi et al. 2016, Opacus) at epsilon 1, 4, 16 and inf (clipping only);
- mia_quant (Famili & Lao 2023).

Every build is compiled and its integer model audited with LiRA (online) and the loss threshold,
*adaptively* (compiler/audit/replay.py): the shadows are trained once per data set and each
build's recipe is replayed on them, so each point is attacked with shadows built like it. The
plain (non-adaptive) numbers are kept beside them. Outputs: OUT/<set>.json, OUT/<set>.md (the
table, the Pareto front of test accuracy vs adaptive LiRA TPR@1%FPR, the best defense at given
accuracy levels, and the seed paper's measure: balanced attack accuracy vs the baseline and vs
Min-Max) and OUT/<set>.png (test accuracy vs TPR@1%FPR, log scale, front marked).

Shadow training and the recipe replays are the cost (K trainings per training point); run the
two sets as two processes on a 2-core machine. Times are printed and recorded.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.datasets import MlpRecipe, default_data_root, load_location, load_mnist, member_split, train_onnx_mlp
from benchmarks.privacy import middle_flow, to_toml
from compiler import api
from compiler.exec.train import TrainConfig

ATTACKS = ("lira_online", "loss_threshold")
ADMM_BUDGET = {"admm_epochs": 20, "retrain_epochs": 20}


@dataclass(frozen=True)
class Point:
    family: str  # the sweep it belongs to (one colour in the plot)
    label: str
    recipe: dict


def points() -> list[Point]:
    ptq = [
        Point("PTQ", f"PTQ {bits}-bit", {"passes": ["canonicalize", "lower"], "lower": {"weight_bits": bits}})
        for bits in (8, 4, 3, 2)
    ]
    admm = [
        Point("ADMM", f"ADMM {int(s * 100)}%", middle_flow("admm", sparsity=s, **ADMM_BUDGET)) for s in (0.5, 0.8, 0.95)
    ]
    privacy_admm = [
        Point(
            "privacy_admm",
            f"privacy_admm 80% λ={lam:g}",
            middle_flow("privacy_admm", sparsity=0.8, lambda_=lam, **ADMM_BUDGET),
        )
        for lam in (1.0, 3.0, 10.0)
    ]
    minmax = [
        Point("minmax", f"minmax λ={lam:g}", middle_flow("minmax", lambda_=lam, epochs=20)) for lam in (1.0, 3.0, 10.0)
    ]
    dp = [
        Point("dp_sgd", f"dp_sgd ε={eps:g}", middle_flow("dp_sgd", epsilon=eps)) for eps in (1.0, 4.0, 16.0, math.inf)
    ]
    # fewer candidates than the pass's defaults (5 widths x 3 lambdas + a per-layer sweep): each
    # point replays the whole search on every shadow
    search = {"bits": [3, 4, 6], "lambdas": [1.5, 3.0], "per_layer_search": False}
    mia_quant = [Point("mia_quant", "mia_quant (3/4/6 bits, λ 1.5/3)", middle_flow("mia_quant", **search))]
    return ptq + admm + privacy_admm + minmax + dp + mia_quant


BASELINE = "PTQ 8-bit"  # the undefended model as mpc compiles it by default


@dataclass
class DataSet:
    name: str
    load: object
    members: int
    mlp: MlpRecipe


SETS = {
    "location": DataSet("Location (Bangkok)", load_location, 2000, MlpRecipe(hidden=(128,), epochs=60)),
    "mnist": DataSet("MNIST (test set)", load_mnist, 2000, MlpRecipe(hidden=(128,), epochs=60)),
}


def run(set_name: str, shadows: int, out: Path, seed: int, only: list[str] | None) -> dict:
    spec = SETS[set_name]
    work = out / f"{set_name}-builds"
    work.mkdir(parents=True, exist_ok=True)
    x, y = spec.load(default_data_root())
    split = member_split(x, y, spec.members, spec.members, seed=seed)
    model, data = train_onnx_mlp(split, work, "target", spec.mlp, n_classes=int(y.max()) + 1)
    training = TrainConfig(epochs=spec.mlp.epochs, lr=spec.mlp.lr, batch_size=spec.mlp.batch_size)
    cache: dict = {}
    rows, start = [], time.perf_counter()
    for index, point in enumerate(points()):  # build<index> is one point's whatever --only runs
        if only and point.family not in only:
            continue
        begin = time.perf_counter()
        recipe = work / f"point{index}.toml"
        recipe.write_text(to_toml(point.recipe))
        build = work / f"build{index}"
        try:
            api.compile(model, data, build, recipe=recipe, force=True, log=lambda *_: None, progress=False,
                        synth_timeout=None)  # fmt: skip
        except api.MpcError as e:
            print(f"  {point.label}: skipped, compile failed: {e}", flush=True)
            continue
        audit = api.audit(
            build, attacks=list(ATTACKS), targets=["compiled"], shadows=shadows, seed=seed, shadow_training=training,
            shadow_cache=cache, adaptive=True, log=lambda *_: None, progress=False,
        )  # fmt: skip
        rows.append(_row(point, build, audit, time.perf_counter() - begin))
        r = rows[-1]
        print(
            f"  {point.label}: test acc {r['test_accuracy']:.3f}, adaptive LiRA TPR@1% {_tpr(r):.3f} "
            f"(plain {_tpr(r, 'plain'):.3f}), {r['seconds']:.0f} s",
            flush=True,
        )
    result = {
        "data_set": spec.name,
        "members": spec.members,
        "mlp": {"hidden": list(spec.mlp.hidden), "epochs": spec.mlp.epochs, "lr": spec.mlp.lr},
        "shadows": shadows,
        "seed": seed,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    mark_pareto(result["rows"])
    return result


def _row(point: Point, build: Path, audit: dict, seconds: float) -> dict:
    compiled = audit["targets"]["compiled"]
    report = json.loads((build / "report.json").read_text())
    keep = ("auc", "balanced_accuracy", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr")
    replayed = audit["shadow_models"].get("replayed", {})
    last = replayed[list(replayed)[-1]] if replayed else audit["shadow_models"]
    return {
        "family": point.family,
        "label": point.label,
        "recipe": point.recipe,
        "test_accuracy": compiled["test_accuracy"],
        "train_accuracy": compiled["train_accuracy"],
        "rom_bits": report["hardware"]["rom_bits"],
        "privacy_training": report.get("privacy_training"),
        "plain": {a: {k: compiled["attacks"][a][k] for k in keep} for a in ATTACKS},
        "adaptive": {a: {k: compiled["adaptive_attacks"][a][k] for k in keep} for a in ATTACKS},
        "shadows_built_like_it": {k: last[k] for k in ("mean_train_accuracy", "mean_test_accuracy")},
        "seconds": round(seconds, 1),
    }


def merged(path: Path, result: dict) -> dict:
    """`--only` results added to an earlier run's (same set, shadows and seed: the target and the
    plain shadows are the same, both seeded), replacing its rows of the families just run."""
    if not path.is_file():
        return result
    earlier = json.loads(path.read_text())
    if (earlier["shadows"], earlier["seed"], earlier["members"]) != (
        result["shadows"],
        result["seed"],
        result["members"],
    ):
        raise SystemExit(f"{path}: another run's settings (shadows, seed, members); use another --out")
    rerun = {r["family"] for r in result["rows"]}
    order = [p.label for p in points()]
    rows = [r for r in earlier["rows"] if r["family"] not in rerun] + result["rows"]
    rows.sort(key=lambda r: order.index(r["label"]) if r["label"] in order else len(order))
    mark_pareto(rows)
    return result | {"rows": rows, "seconds": round(earlier["seconds"] + result["seconds"], 1)}


def mark_pareto(rows: list[dict]) -> None:
    """On the front: no other point has higher-or-equal accuracy and lower-or-equal adaptive
    LiRA TPR@1%FPR, one of them strictly."""
    for r in rows:
        a, t = r["test_accuracy"], _tpr(r)
        r["pareto"] = not any(
            o is not r and o["test_accuracy"] >= a and _tpr(o) <= t and (o["test_accuracy"] > a or _tpr(o) < t)
            for o in rows
        )


def _tpr(row: dict, kind: str = "adaptive") -> float:
    return row[kind]["lira_online"]["tpr_at_1pct_fpr"]


def _attack_accuracy(row: dict, kind: str) -> float:
    """The seed paper's "attack accuracy": the strongest attack's balanced accuracy."""
    return max(m["balanced_accuracy"] for m in row[kind].values())


LEVELS = (0.99, 0.9, 0.75, 0.6)  # accuracy floors, as shares of the baseline's test accuracy


def best_at_levels(rows: list[dict], baseline_accuracy: float) -> list[tuple[float, dict | None]]:
    """For each accuracy floor (LEVELS times the baseline's): the point with the lowest adaptive
    LiRA TPR@1%FPR among those at or above the floor."""
    out = []
    for share in LEVELS:
        floor = share * baseline_accuracy
        eligible = [r for r in rows if r["test_accuracy"] >= floor]
        best = min(eligible, key=lambda r: (_tpr(r), -r["test_accuracy"])) if eligible else None
        out.append((floor, best))
    return out


def render(result: dict) -> str:
    rows = result["rows"]
    lines = [
        f"### {result['data_set']}: {result['members']} members / {result['members']} non-members, MLP "
        f"{'-'.join(map(str, result['mlp']['hidden']))} hidden, {result['mlp']['epochs']} epochs; "
        f"{result['shadows']} shadow models, adaptive audit; {result['seconds'] / 60:.0f} min on this machine",
        "",
        "| point | test acc | ROM bits | adaptive LiRA TPR@1% | adaptive AUC | plain LiRA TPR@1% | plain AUC | "
        "attack acc (adaptive) | attack acc (plain) | front |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ad, pl = r["adaptive"]["lira_online"], r["plain"]["lira_online"]
        lines.append(
            f"| {r['label']} | {_pct(r['test_accuracy'])} | {r['rom_bits']:,} | {_pct(ad['tpr_at_1pct_fpr'])} | "
            f"{ad['auc']:.3f} | {_pct(pl['tpr_at_1pct_fpr'])} | {pl['auc']:.3f} | "
            f"{_pct(_attack_accuracy(r, 'adaptive'))} | {_pct(_attack_accuracy(r, 'plain'))} | "
            f"{'★' if r['pareto'] else ''} |"
        )
    by_label = {r["label"]: r for r in rows}
    if BASELINE in by_label:
        base = by_label[BASELINE]
        lines += ["", f"Lowest adaptive LiRA TPR@1%FPR at a given accuracy (baseline {BASELINE}: "
                  f"{_pct(base['test_accuracy'])}):", ""]  # fmt: skip
        for floor, best in best_at_levels(rows, base["test_accuracy"]):
            per_family = [
                min(mine, key=_tpr)
                for family in dict.fromkeys(r["family"] for r in rows)
                if (mine := [r for r in rows if r["family"] == family and r["test_accuracy"] >= floor])
            ]
            others = ", ".join(f"{r['label']} {_pct(_tpr(r))}" for r in sorted(per_family, key=_tpr) if r is not best)
            lines.append(
                f"- test accuracy ≥ {_pct(floor)}: "
                + (
                    f"**{best['label']}** ({_pct(best['test_accuracy'])}, TPR@1% {_pct(_tpr(best))})"
                    if best
                    else "none"
                )
                + (f"; best of the other sweeps: {others}" if others else "")
            )
        lines += ["", *claim_lines(by_label)]
    return "\n".join(lines)


def claim_lines(by_label: dict) -> list[str]:
    """Wang et al. 2021: privacy_admm's attack accuracy up to 13.6 points below the baseline's and
    10 below Min-Max's. Here: the strongest attack's balanced accuracy, both attackers."""
    base = by_label.get(BASELINE)
    ours = [r for label, r in by_label.items() if r["family"] == "privacy_admm"]
    if not base or not ours:
        return []
    lines = [
        'Seed claim: the strongest attack\'s balanced accuracy ("attack accuracy") of privacy_admm minus '
        f"that of the baseline ({BASELINE}) and of Min-Max at the same λ, in points:",
        "",
    ]
    for r in ours:
        minmax = by_label.get("minmax " + r["label"].split()[-1])  # "privacy_admm 80% λ=3" -> "minmax λ=3"
        cells = []
        for kind in ("plain", "adaptive"):
            vs_base = 100 * (_attack_accuracy(r, kind) - _attack_accuracy(base, kind))
            vs_mm = 100 * (_attack_accuracy(r, kind) - _attack_accuracy(minmax, kind)) if minmax else math.nan
            cells.append(f"{kind}: {vs_base:+.1f} vs baseline, {vs_mm:+.1f} vs Min-Max")
        mm_acc = f", Min-Max's {_pct(minmax['test_accuracy'])}" if minmax else ""
        lines.append(f"- {r['label']} (test acc {_pct(r['test_accuracy'])}{mm_acc}): " + "; ".join(cells))
    return lines


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, PercentFormatter

    rows = result["rows"]
    floor = 1 / result["members"]  # one non-member: TPR 0 is drawn at the resolution limit
    fig, ax = plt.subplots(figsize=(7, 5))
    for family in dict.fromkeys(r["family"] for r in rows):
        mine = [r for r in rows if r["family"] == family]
        ax.scatter([max(_tpr(r), floor) for r in mine], [r["test_accuracy"] for r in mine], label=family, s=36)
        for r in mine:
            ax.annotate(r["label"].replace(family, "").strip() or family, (max(_tpr(r), floor), r["test_accuracy"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")  # fmt: skip
    front = sorted((r for r in rows if r["pareto"]), key=_tpr)
    xs, ys = [max(_tpr(r), floor) for r in front], [r["test_accuracy"] for r in front]
    ax.plot(xs, ys, "k--", lw=1, label="Pareto front")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.xaxis.set_minor_formatter(NullFormatter())  # log minor labels overlap
    ax.set_xlabel("adaptive LiRA TPR at 1% FPR (log; lower is more private)")
    ax.set_ylabel("test accuracy (compiled integer model)")
    ax.set_title(f"{result['data_set']}: privacy-utility frontier")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=sorted(SETS), help="the data set to sweep")
    parser.add_argument("--shadows", type=int, default=16, help="shadow models per data set (default: 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("frontier"), help="folder for builds and results")
    parser.add_argument("--only", help="comma-separated families to run (PTQ, ADMM, privacy_admm, ...)")
    parser.add_argument("--render", nargs="+", type=Path, metavar="RESULT.json", help="re-render saved results")
    args = parser.parse_args()
    if args.render:
        for path in args.render:
            result = json.loads(path.read_text())
            plot(result, path.with_suffix(".png"))
            print(render(result), "\n")
        return
    if not args.set:
        parser.error("give --set (or --render)")
    result = run(args.set, args.shadows, args.out, args.seed, args.only.split(",") if args.only else None)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only:
        result = merged(args.out / f"{args.set}.json", result)
    (args.out / f"{args.set}.json").write_text(json.dumps(result, indent=1))
    plot(result, args.out / f"{args.set}.png")
    (args.out / f"{args.set}.md").write_text(render(result) + "\n")
    print(render(result))


if __name__ == "__main__":
    main()
