"""Reference builds, and what changed between two sets of them.

    python benchmarks/reference_builds.py build OUT_DIR [--quick]
    python benchmarks/reference_builds.py diff BEFORE_DIR AFTER_DIR

`build` compiles (with yosys synthesis) and simulates (16 samples, Icarus) four designs into
OUT_DIR: the demo (digits MLP, default flow), an ADMM build (90% irregular sparsity, 4-bit), a
block-circulant build (b = 8), and, without --quick and where ../shared/data holds MNIST, LeNet-5
trained on 3,000 MNIST images for 5 epochs (seed 0). `diff` prints, per design, every report.json
field that differs between two such folders, leaving out timings, paths and creation times:
what a refactoring that must not change behaviour is checked with (run `build` on the commit
before and the commit after).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler import api

RECIPES = {
    "demo": None,
    "admm": 'passes = ["canonicalize", "admm", "lower"]\n[admm]\nsparsity = 0.9\nbits = 4\n',
    "circulant": 'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = 8\n',
}
IGNORED = {"created", "compile_seconds", "seconds", "source", "data", "log", "run_seconds", "wall_seconds"}


def _lenet(work: Path, shared: Path):
    from benchmarks.datasets import MlpRecipe, load_mnist, make_lenet5, member_split, train_onnx_model

    x, y = load_mnist(shared)
    data = member_split(x[:, None], y, 3000, 2000, seed=0)
    return train_onnx_model(make_lenet5, data, work, "lenet5", MlpRecipe(epochs=5, seed=0))


def build(root: Path, quick: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    quiet = {"log": lambda *_: None, "progress": False}
    examples = ROOT / "examples"
    jobs: dict[str, tuple] = {}
    for name, text in RECIPES.items():
        recipe = None
        if text:
            recipe = root / f"{name}.toml"
            recipe.write_text(text)
        jobs[name] = (examples / "digits_mlp.onnx", examples / "digits.npz", recipe)
    shared = ROOT.parent / "shared" / "data"
    if not quick and (shared / "mnist").exists():
        model, data = _lenet(root / "lenet5_model", shared)
        jobs["lenet5"] = (model, data, None)
    for name, (model, data, recipe) in jobs.items():
        report = api.compile(model, data, root / name, recipe=recipe, force=True, **quiet)
        sim = api.simulate(root / name, samples=16, log=quiet["log"])
        hw = report["hardware"]
        print(
            f"{name:10s} accuracy {report['compiled']['test_accuracy']:.4f}  cycles {sim['cycles_per_inference']}"
            f"  ROM bits {hw['rom_bits']:,}  LUT {hw.get('lut')}  FF {hw.get('ff')}  mismatches {sim['mismatches']}"
        )


def differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key in IGNORED:
                continue
            if key not in a or key not in b:
                side = "after" if key not in a else "before"
                out.append(f"{path}.{key}: only {side}: {json.dumps((b if key not in a else a)[key])[:160]}")
            else:
                out += differences(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {json.dumps(a)[:160]} -> {json.dumps(b)[:160]}"]


def diff(before: Path, after: Path) -> None:
    for report in sorted(before.glob("*/report.json")):
        other = after / report.parent.name / "report.json"
        if not other.is_file():
            print(f"== {report.parent.name}: not in {after}")
            continue
        found = differences(json.loads(report.read_text()), json.loads(other.read_text()), report.parent.name)
        print(f"== {report.parent.name}: {len(found)} differences")
        print("\n".join(found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="compile and simulate the reference designs into OUT_DIR")
    b.add_argument("out", type=Path)
    b.add_argument("--quick", action="store_true", help="the three digits builds only (no LeNet-5)")
    d = sub.add_parser("diff", help="report.json differences between two build folders")
    d.add_argument("before", type=Path)
    d.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "build":
        build(args.out, args.quick)
    else:
        diff(args.before, args.after)


if __name__ == "__main__":
    main()
