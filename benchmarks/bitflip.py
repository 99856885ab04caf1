"""Bit-flip robustness of compiled designs (BFA on the ROMs as stored) and what SECDED costs.

    python benchmarks/bitflip.py [--quick] [--models lenet5,digits] [--simulate 8] [--shared ../shared/data]
                                 [--protections secded,secded/weight] [--reuse]

Models: LeNet-5 trained on 8,000 images of the MNIST test set in ../shared/data (the other 2,000
are its test split; the MNIST training set is not available here) and the bundled digits MLP
64-32-16-10. Builds of each: int8 (8-bit PTQ, dense and conv engines), ADMM 90% / 4-bit (convolutions
at 50%, sparse engines where they pay), block-circulant b = 8 on the dense layers, and each of
those re-planned from its lower checkpoint with `[plan] rom_protection = "secded"`, one code per
ROM word ("secded") and one per weight ("secded/weight", `rom_protection_unit = "weight"`).

Every build is attacked by `mpc audit --attacks bitflip`: BFA's progressive bit search to
random-guess accuracy (1/10 + 1 point) within 50 flips, the random-flip baseline (median of 5
trials, flips doubling), and `--simulate` test rows run (Verilator) with the flipped ROM files. On a
SECDED build the search counts the physical flips an attacker who knows the code needs, and the
unprotected build's search is replayed on the coded ROMs ("naive").
Columns: LUTs and FFs from yosys synth_xilinx of the whole design; energy from the report's model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler import api
from compiler.audit.bitflip import BitflipConfig

QUIET = {"log": lambda *_: None, "progress": False}
BUILDS = {
    "int8": 'passes = ["canonicalize", "lower"]\n',
    "admm90_4bit": 'passes = ["canonicalize", "admm", "lower"]\n[admm]\nsparsity = 0.9\nbits = 4\n{conv_tables}',
    "circulant8": 'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = 8\nepochs = {epochs}\n',
}
PROTECTIONS = {  # re-plans of each build from its lower checkpoint
    "secded": '[plan]\nrom_protection = "secded"\n',
    "secded/weight": '[plan]\nrom_protection = "secded"\nrom_protection_unit = "weight"\n',
}


def lenet5_case(work: Path, shared: Path, quick: bool, reuse: bool = False) -> tuple[Path, Path, list[str]]:
    from benchmarks.datasets import MlpRecipe, accuracy_of, export_onnx, load_mnist, make_lenet5, train_torch_classifier

    path, data = work / "lenet5.onnx", work / "lenet5.npz"
    if reuse and path.is_file() and data.is_file():  # the model an earlier run trained (training varies run to run)
        return path, data, _conv_names(path)
    x, y = load_mnist(shared)
    x = x[:, None]
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:8000], order[8000:]
    model = train_torch_classifier(make_lenet5(), x[train], y[train], MlpRecipe(epochs=3 if quick else 10, seed=0))
    print(f"LeNet-5 float accuracy {accuracy_of(model, x[test], y[test]):.4f}")
    export_onnx(model, x.shape[1:], path)
    np.savez_compressed(data, x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])
    return path, data, _conv_names(path)


def _conv_names(model: Path) -> list[str]:
    from compiler.frontend.onnx import load_onnx

    return [n.name for n in load_onnx(model).nodes if n.op == "conv2d"]


def _flattened_dense(model: Path) -> list[str]:
    """The dense layer after a CNN's flatten: it reads a channel-last stream, which would break
    block-circulant columns, so it stays dense."""
    from compiler.frontend.onnx import load_onnx

    graph = load_onnx(model)
    dense = [n.name for n in graph.nodes if n.op == "dense"]
    return dense[:1] if any(n.op == "conv2d" for n in graph.nodes) else []


def recipe_text(build: str, model: Path, convs: list[str], quick: bool) -> str:
    tables = "".join(f'[admm.layers."{c}"]\nsparsity = 0.5\n' for c in convs)
    text = BUILDS[build].format(conv_tables=tables, epochs=10 if quick else 60)
    if build.startswith("circulant"):
        text += "".join(f'[circulant.layers."{d}"]\nblock_size = 1\n' for d in _flattened_dense(model))
    return text


def run_build(model, data, work: Path, name: str, recipe: str, config, protections, reuse: bool) -> list[dict]:
    """The build and its protected re-plans, each compiled and attacked (`reuse`: the build
    compiled by an earlier run is only re-planned)."""
    rows = []
    out = work / name
    if not (reuse and (out / "report.json").is_file()):
        (work / f"{name}.toml").write_text(recipe)
        start = time.perf_counter()
        api.compile(model, data, out, recipe=work / f"{name}.toml", force=True, **QUIET)
        rows.append(attack(out, name, config, time.perf_counter() - start))
    lower = next(p for p in sorted((out / "checkpoints").iterdir()) if p.name.endswith("-lower"))
    for protection in protections:
        stem = f"{name}_{protection.replace('/', '_')}"
        if reuse and (work / stem / "audit.json").is_file():
            continue  # attacked by an earlier run
        (work / f"{stem}.toml").write_text(PROTECTIONS[protection])
        start = time.perf_counter()
        api.compile(lower, data, work / stem, recipe=work / f"{stem}.toml", force=True, **QUIET)
        rows.append(attack(work / stem, f"{name} + {protection}", config, time.perf_counter() - start))
    return rows


def attack(out: Path, name: str, config: BitflipConfig, compile_seconds: float) -> dict:
    start = time.perf_counter()
    result = api.audit(out, attacks="bitflip", targets="compiled", bitflip=config, **QUIET)
    b = result["targets"]["compiled"]["attacks"]["bitflip"]
    hw = json.loads((out / "report.json").read_text())["hardware"]
    row = {
        "build": name,
        "accuracy": b["accuracy_per_flip"][0],
        "rom_bits": hw["rom_bits"],
        "check_bits": (hw.get("rom_protection") or {}).get("check_bits", 0),
        "lut": hw.get("lut"),
        "ff": hw.get("ff"),
        "energy_nj": hw["energy_pj"]["compiled"] / 1000,
        "bfa_flips": b["flips_to_target"],
        "searched": b["physical_flips_per_step"][-1],
        "final_accuracy": b["accuracy_per_flip"][-1],
        "random_flips": b["random_flips_for_same_drop"],
        "random_up_to": b["random_flips_tried_up_to"],
        "naive": b.get("naive_attack"),
        "sim": b.get("simulation"),
        "first_flips": [f"{f['rom']}:{f['field']}" for f in b["flips"][:3]],
        "seconds": round(compile_seconds + time.perf_counter() - start, 1),
    }
    print(_line(row), flush=True)
    return row


def _line(r: dict) -> str:
    bfa = f"{r['bfa_flips']}" if r["bfa_flips"] is not None else f">{r['searched']} (acc {r['final_accuracy']:.3f})"
    rnd = f"{r['random_flips']}" if r["random_flips"] is not None else f">{r['random_up_to']}"
    ratio = f"{r['random_flips'] / r['bfa_flips']:.0f}x" if r["random_flips"] and r["bfa_flips"] else "-"
    naive = "-"
    if r["naive"]:
        n = r["naive"]
        naive = f"{n['flips']} flips: {n['accuracy']:.3f}{' fault' if n['fault_raised'] else ''}"
    sim = f"{r['sim']['mismatches']}/{r['sim']['samples']}" if r["sim"] else "-"
    energy = f"{r['energy_nj']:.2f}" if r["energy_nj"] is not None else "-"
    return (
        f"| {r['build']} | {r['accuracy']:.4f} | {r['rom_bits']:,} (+{r['check_bits']:,}) | {r['lut']} | {r['ff']} | "
        f"{energy} | {bfa} | {rnd} | {ratio} | {naive} | {sim} | {', '.join(r['first_flips'])} | {r['seconds']} |"
    )


HEADER = (
    "| build | int acc | ROM bits (+check) | LUT | FF | energy nJ | BFA flips to 11% | random flips | ratio | "
    "naive flips on secded | sim mismatches | first flips | s |\n|" + "---|" * 13
)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="digits only, fewer epochs and flips")
    p.add_argument("--models", default="lenet5,digits")
    p.add_argument("--simulate", type=int, default=8, help="test rows simulated with the flipped ROMs")
    p.add_argument(
        "--simulator",
        default="verilator",
        choices=("icarus", "verilator"),
        help="for --simulate (default verilator: Icarus takes minutes per SECDED LeNet-5 sample)",
    )
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--work", type=Path, default=Path("/tmp/mpc_bitflip"))
    p.add_argument(
        "--protections", default=",".join(PROTECTIONS), help=f"re-plans of each build ({', '.join(PROTECTIONS)})"
    )
    p.add_argument("--reuse", action="store_true", help="keep the models and builds of an earlier run in --work")
    args = p.parse_args(argv)
    models = ["digits"] if args.quick else args.models.split(",")
    config = BitflipConfig(
        max_flips=20 if args.quick else 50,
        eval_samples=1000,
        random_trials=5,
        simulate=args.simulate,
        simulator=args.simulator,
        random_max=1024 if args.quick else 32768,
    )
    args.work.mkdir(parents=True, exist_ok=True)
    for model_name in models:
        work = args.work / model_name
        work.mkdir(exist_ok=True)
        if model_name == "lenet5":
            model, data, convs = lenet5_case(work, args.shared, args.quick, args.reuse)
        else:
            model, data, convs = ROOT / "examples" / "digits_mlp.onnx", ROOT / "examples" / "digits.npz", []
        print(f"\n### {model_name}\n\n{HEADER}", flush=True)
        for build in BUILDS:
            recipe = recipe_text(build, model, convs, args.quick)
            run_build(model, data, work, build, recipe, config, args.protections.split(","), args.reuse)


if __name__ == "__main__":
    main()
