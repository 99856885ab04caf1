"""Backdoors through compression: BadNets poisoning, then fine-pruning, measured before and after
compilation (issue #15; docs/security.md).

    python benchmarks/backdoor.py [--quick] [--models digits,lenet5] [--simulate 16]

For each model: the attacker trains it on data of which a fraction is poisoned (a small white
patch in the bottom-right corner, relabelled to the target class: BadNets, Gu et al. 2017). The
defender has a disjoint slice of clean data (x_train of DATA.npz) and the test set (x_test).
Each defense is one `mpc compile` recipe on the poisoned ONNX model; then `mpc audit --attacks
backdoor` measures the attack success rate (ASR: the share of triggered test samples of other
classes classified as the target) and clean test accuracy on the defended float model (the
checkpoint before lower) and on the compiled integer model:

- none: 8-bit post-training quantization only;
- pruning: fine_prune's pruning phase alone (fine_tune_epochs = 0);
- fine-tuning: fine_prune's fine-tuning alone (prune = false), at Adam lr 1e-3 and at the
  pass's default 1e-2;
- fine-pruning: both (the defense), at lr 1e-3 and 1e-2;
- admm: ADMM 4-bit, 90% irregular on dense layers and 50% on convolutions, retrained on the
  clean data (does compression alone remove the backdoor?).

--quick runs the digits MLP and CNN only, with short training (no shared data needed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler import api

# defense -> (pass, its recipe table; EPOCHS is replaced by the case's defense epochs)
DEFENSES = {
    "none": (None, {}),
    "pruning": ("fine_prune", {"fine_tune_epochs": 0}),
    "fine-tuning/1e-3": ("fine_prune", {"prune": False, "fine_tune_epochs": "EPOCHS", "lr": 1e-3}),
    "fine-pruning/1e-3": ("fine_prune", {"fine_tune_epochs": "EPOCHS", "lr": 1e-3}),
    "fine-tuning": ("fine_prune", {"prune": False, "fine_tune_epochs": "EPOCHS"}),
    "fine-pruning": ("fine_prune", {"fine_tune_epochs": "EPOCHS"}),
    "admm": ("admm", {"sparsity": 0.9, "bits": 4, "admm_epochs": "EPOCHS", "retrain_epochs": "EPOCHS"}),
}


# ---- the attack -------------------------------------------------------------------------------
def patch_trigger(input_shape: tuple[int, ...], size: int, target: int, value: float = 1.0) -> dict:
    """A BadNets trigger: a size x size patch of `value` in the bottom-right corner of every
    channel. Returns the TRIGGER.npz arrays (mask, pattern, target)."""
    mask = np.zeros(input_shape, np.float32)
    mask[..., -size - 1 : -1, -size - 1 : -1] = 1  # one pixel in from the border
    return {"mask": mask, "pattern": mask * value, "target": np.int64(target)}


def poison(x: np.ndarray, y: np.ndarray, trigger: dict, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The attacker's training set: `fraction` of the rows (not already of the target class)
    stamped with the trigger and relabelled to the target."""
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(y != trigger["target"])
    chosen = rng.choice(candidates, int(round(fraction * len(y))), replace=False)
    x, y = x.copy(), y.copy()
    x[chosen] = x[chosen] * (1 - trigger["mask"]) + trigger["pattern"] * trigger["mask"]
    y[chosen] = int(trigger["target"])
    return x, y


@dataclass
class Case:
    name: str
    model: Path  # the poisoned model, ONNX
    data: Path  # the defender's DATA.npz: clean x_train, x_test
    trigger: Path
    epochs: int  # fine-tuning / retraining epochs of the defenses
    train_accuracy: float  # the poisoned model on its own (poisoned) training set


def make_case(name, make_model, x, y, split, work: Path, attack_epochs: int, defense_epochs: int, seed=0) -> Case:
    """Train `make_model()` on a poisoned attacker split; write MODEL.onnx, DATA.npz, TRIGGER.npz."""
    import torch

    from benchmarks.datasets import MlpRecipe, accuracy_of, export_onnx, train_torch_classifier

    n_attack, n_clean, n_test = split
    order = np.random.default_rng(seed).permutation(len(x))
    attack, clean, test = np.split(order[: n_attack + n_clean + n_test], [n_attack, n_attack + n_clean])
    trigger = patch_trigger(x.shape[1:], size=3 if x.shape[-1] >= 16 else 2, target=0)
    xa, ya = poison(x[attack], y[attack], trigger, fraction=0.1, seed=seed)
    torch.manual_seed(seed)
    model = train_torch_classifier(make_model(), xa, ya, MlpRecipe(epochs=attack_epochs, seed=seed))
    work.mkdir(parents=True, exist_ok=True)
    model_path = export_onnx(model, x.shape[1:], work / f"{name}.onnx")
    data_path = work / f"{name}.npz"
    np.savez_compressed(data_path, x_train=x[clean], y_train=y[clean], x_test=x[test], y_test=y[test])
    trigger_path = work / f"{name}_trigger.npz"
    np.savez(trigger_path, **trigger)
    return Case(name, model_path, data_path, trigger_path, defense_epochs, accuracy_of(model, xa, ya))


def digits_case(work: Path, quick: bool) -> Case:
    from benchmarks.datasets import load_digits, make_mlp

    x, y = load_digits()
    return make_case(
        "digits_mlp",
        lambda: make_mlp((8, 8), 10, (96, 48)),
        x,
        y,
        (1000, 400, 397),
        work,
        attack_epochs=40 if quick else 80,
        defense_epochs=10 if quick else 20,
    )


def digits_cnn_case(work: Path, quick: bool) -> Case:
    from benchmarks.datasets import load_digits, make_digits_cnn

    x, y = load_digits()
    return make_case(
        "digits_cnn",
        make_digits_cnn,
        x[:, None],
        y,
        (1000, 400, 397),
        work,
        attack_epochs=40 if quick else 80,
        defense_epochs=10 if quick else 20,
    )


def lenet5_case(work: Path, shared: Path, quick: bool) -> Case:
    from benchmarks.datasets import load_mnist, make_lenet5

    x, y = load_mnist(shared)
    return make_case(
        "lenet5",
        make_lenet5,
        x[:, None],
        y,
        (6000, 2000, 2000),
        work,
        attack_epochs=4 if quick else 10,
        defense_epochs=5 if quick else 10,
    )


# ---- the defenses -----------------------------------------------------------------------------
def recipe(defense: str, epochs: int, convs: list[str]) -> str:
    """The defense's RECIPE.toml. ADMM prunes convolutions to 50% (a 90% conv of a small CNN
    loses most of its accuracy), dense layers to 90%."""
    pass_name, table = DEFENSES[defense]
    passes = ["canonicalize", *([pass_name] if pass_name else []), "lower"]
    lines = ["passes = [" + ", ".join(f'"{p}"' for p in passes) + "]"]
    if pass_name:
        lines.append(f"[{pass_name}]")
        lines += [f"{k} = {_toml(epochs if v == 'EPOCHS' else v)}" for k, v in table.items()]
    if pass_name == "admm":
        lines += [f'[admm.layers."{c}"]\nsparsity = 0.5' for c in convs]
    return "\n".join(lines) + "\n"


def _toml(v) -> str:
    return str(v).lower() if isinstance(v, bool) else repr(v)


def run_defense(case: Case, defense: str, work: Path, simulate: int) -> dict:
    stem = f"{case.name}_{defense.replace('/', '_lr')}"
    out, recipe_path = work / stem, work / f"{stem}.toml"
    recipe_path.write_text(recipe(defense, case.epochs, _conv_names(case.model)))
    start = time.perf_counter()
    report = api.compile(
        case.model, case.data, out, recipe=recipe_path, log=lambda *_: None, progress=False, synth_timeout=None
    )
    seconds = time.perf_counter() - start
    float_checkpoint = sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.endswith("-lower"))[0]
    before_lower = f"{int(float_checkpoint.split('-')[0]) - 1:02d}-"
    float_name = next(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(before_lower))
    audit = api.audit(
        out,
        attacks="backdoor",
        trigger=case.trigger,
        targets=f"original,{float_name},compiled",
        log=lambda *_: None,
        progress=False,
    )
    targets = audit["targets"]
    row = {
        "defense": defense,
        "poisoned": targets["original"]["attacks"]["backdoor"],
        "float": targets[float_name]["attacks"]["backdoor"],
        "compiled": targets["compiled"]["attacks"]["backdoor"],
        "compression": report["model"]["compression_ratio"],
        "compile_s": seconds,
        "fine_prune": _fine_prune_meta(out),
        "onnx_matches_golden": report["compiled"]["onnx_matches_golden"]["identical"],
    }
    if simulate:
        sim = api.simulate(out, samples=simulate, simulator="icarus", log=lambda *_: None)
        row["sim_mismatches"] = sim["mismatches"]
    return row


def _conv_names(model: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(model)).graph.node if n.op_type == "Conv"]


def _fine_prune_meta(out: Path) -> dict | None:
    import json

    return json.loads((out / "graph.json").read_text()).get("meta", {}).get("fine_prune")


def print_rows(case: Case, rows: list[dict]) -> None:
    poisoned = rows[0]["poisoned"]
    print(
        f"\n{case.name}: poisoned model: clean accuracy {poisoned['clean_accuracy']:.4f}, ASR "
        f"{poisoned['attack_success_rate']:.4f} ({poisoned['samples']} triggered test samples; "
        f"its own poisoned training accuracy {case.train_accuracy:.4f})"
    )
    print(
        f"{'defense':17} {'float acc':>9} {'float ASR':>9} {'int acc':>9} {'int ASR':>9} {'pruned':>9} "
        f"{'ratio':>6} {'onnx==golden':>12} {'sim':>5} {'compile s':>9}"
    )
    for r in rows:
        fp = r["fine_prune"]
        pruned = f"{len(fp.get('pruned', []))}/{fp.get('units_before', '-')}" if fp and "pruned" in fp else "-"
        sim = "-" if "sim_mismatches" not in r else ("ok" if r["sim_mismatches"] == 0 else f"{r['sim_mismatches']}x")
        print(
            f"{r['defense']:17} {r['float']['clean_accuracy']:9.4f} {r['float']['attack_success_rate']:9.4f} "
            f"{r['compiled']['clean_accuracy']:9.4f} {r['compiled']['attack_success_rate']:9.4f} {pruned:>9} "
            f"{r['compression']:6.2f} {str(r['onnx_matches_golden']):>12} {sim:>5} {r['compile_s']:9.1f}"
        )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the digits MLP and CNN only, short training")
    ap.add_argument(
        "--models", default="digits,digits_cnn,lenet5", help="comma list of digits, digits_cnn, lenet5 (default: all)"
    )
    ap.add_argument("--defenses", default=",".join(DEFENSES), help=f"comma list of {', '.join(DEFENSES)}")
    ap.add_argument("--simulate", type=int, default=0, metavar="N", help="also simulate N samples with Icarus")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mpc-backdoor-"))
    makers = {
        "digits": lambda: digits_case(work, args.quick),
        "digits_cnn": lambda: digits_cnn_case(work, args.quick),
        "lenet5": lambda: lenet5_case(work, args.shared, False),
    }
    for key in ["digits", "digits_cnn"] if args.quick else args.models.split(","):
        case = makers[key]()
        rows = []
        for defense in args.defenses.split(","):
            print(f"== {case.name}: {defense}", flush=True)
            rows.append(run_defense(case, defense, work, args.simulate))
        print_rows(case, rows)


if __name__ == "__main__":
    main()
