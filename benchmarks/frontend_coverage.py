"""What exporters' models compile: the corpus of benchmarks/exporter_corpus.py through the whole flow.

    python benchmarks/frontend_coverage.py [--quick]

For every model (torch exports with both exporters, tf2onnx-shaped NHWC graphs, QONNX graphs, a
wide MLP) it prints: the ONNX op types, whether `mpc compile` takes it as given (else the one-line
refusal), the share of test samples where the integer model's class equals the float model's,
the cycles per inference measured in simulation (8 samples, Icarus) and yosys' LUT count
(--quick: no synthesis, no simulation).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnx

from benchmarks.exporter_corpus import CORPUS, class_agreement
from compiler import api


def ops_of(model: Path) -> str:
    counts = Counter(n.op_type for n in onnx.load(str(model), load_external_data=False).graph.node)
    return ", ".join(f"{op}" + (f" x{k}" if k > 1 else "") for op, k in sorted(counts.items()))


def measure(entry, work: Path, quick: bool) -> dict:
    model, data = entry.build(work / "model")
    row = {"model": entry.name, "ops": ops_of(model)}
    try:
        report = api.compile(
            model, data, work / "out", log=lambda *_: None, progress=False, synth_timeout=None if quick else 300
        )
    except api.MpcError as e:
        return row | {"compiled": f"no: {str(e)[:90]}"}
    agree = class_agreement(work / "out", data)
    row |= {"compiled": "yes", "agreement": f"{agree:.1%}", "lut": report["hardware"].get("lut")}
    if not quick:
        sim = api.simulate(work / "out", samples=8, log=lambda *_: None)
        row["cycles"] = f"{sim['cycles_per_inference']} ({sim['mismatches']} mismatches)"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="no synthesis and no simulation")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, entry in enumerate(CORPUS):
            rows.append(measure(entry, Path(tmp) / str(k), args.quick))
            print(f"  {entry.name}: {rows[-1]['compiled']}", file=sys.stderr)
    columns = ["model", "ops", "compiled", "agreement", "cycles", "lut"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")


if __name__ == "__main__":
    main()
