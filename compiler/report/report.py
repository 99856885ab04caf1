"""report.json and report.md: what compression did, always written (schema: docs/report.md)."""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np

from compiler.ir import Graph

SCHEMA_VERSION = 1


def build_report(original: Graph, compiled: Graph, design: dict, records, accuracy: dict, onnx_check: dict,
                 ctx, source: Path, seconds: float) -> dict:
    layers = [_layer_entry(compiled, node, engine) for node, engine in zip(compiled.weighted_nodes(), design["engines"])]
    float_bits = 32 * sum(original.params[n.inputs[1]].size for n in original.weighted_nodes())
    weight_bits = sum(layer["weight_bits"] for layer in layers)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": str(source),
        "data": getattr(ctx.data, "path", None),
        "target": ctx.target,
        "seed": ctx.seed,
        "compile_seconds": round(seconds, 3),
        "float": accuracy["float"],
        "compiled": dict(accuracy["compiled"], onnx_matches_golden=onnx_check),
        "passes": [r.to_dict() for r in records],
        "model": {
            "parameters": int(sum(p.size for p in original.params.values())),
            "float_weight_bits": float_bits,
            "weight_bits": weight_bits,
            "bias_bits": sum(layer["bias_bits"] for layer in layers),
            "compression_ratio": round(float_bits / weight_bits, 3) if weight_bits else None,
            "input_format": compiled.meta["input_format"],
            "output_format": compiled.meta["output_format"],
        },
        "layers": layers,
        "hardware": {
            "top": design["top"],
            "estimated_cycles_per_inference": sum(layer["estimated_cycles"] for layer in layers),
            "cycles_per_inference": None,  # filled in by `mpc simulate`
            "rom_bits": sum(e["rom_bits"] for e in design["engines"]),
            "multipliers": sum(e["multipliers"] for e in design["engines"]),
        },
        "simulation": None,
    }


def _layer_entry(graph: Graph, node, engine: dict) -> dict:
    w = graph.params[node.inputs[1]]
    bits = node.attrs["weight_format"]["bits"]
    n_bias = len(graph.params[node.inputs[2]]) if len(node.inputs) > 2 else 0
    return {
        "name": node.name,
        "shape": [int(w.shape[0]), int(w.shape[1])],
        "sparsity": round(float(np.mean(w == 0)), 4),
        "bits": bits,
        "engine": "dense",
        "multipliers": engine["multipliers"],
        "weight_bits": int(w.size * bits),
        "bias_bits": int(n_bias * node.attrs["acc_bits"]),
        "acc_bits": node.attrs["acc_bits"],
        "weight_format": node.attrs["weight_format"],
        "input_format": node.attrs["input_format"],
        "estimated_cycles": dense_cycles(engine["n_in"], engine["n_out"], engine["multipliers"]),
    }


def dense_cycles(n_in: int, n_out: int, multipliers: int) -> int:
    """Cycles of one dense_mac inference: load the inputs, then one ROM word per cycle per
    output plus the pipeline's per-output overhead (rtl/dense_mac.v's header)."""
    return n_in + n_out * (math.ceil(n_in / multipliers) + 2)


def write_report(report: dict, folder: Path) -> None:
    folder = Path(folder)
    (folder / "report.json").write_text(json.dumps(report, indent=1))
    (folder / "report.md").write_text(render_markdown(report))


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def render_markdown(r: dict) -> str:
    m, hw = r["model"], r["hardware"]
    lines = [
        f"# mpc build report: {Path(r['source']).name}",
        "",
        f"Target `{r['target']}`, seed {r['seed']}, compiled in {r['compile_seconds']} s.",
        "",
        "| | float | compiled (integer) |",
        "|---|---|---|",
        f"| test accuracy | {_pct(r['float']['test_accuracy'])} | {_pct(r['compiled']['test_accuracy'])} |",
        f"| train accuracy | {_pct(r['float']['train_accuracy'])} | {_pct(r['compiled']['train_accuracy'])} |",
        f"| weight bits | {m['float_weight_bits']:,} | {m['weight_bits']:,} |",
        "",
        f"Compression ratio (float32 weight bits / compiled weight bits): **{m['compression_ratio']}x**. "
        f"`model.int.onnx` identical to the golden executor on "
        f"{r['compiled']['onnx_matches_golden']['checked_samples']} test samples: "
        f"{r['compiled']['onnx_matches_golden']['identical']}.",
        "",
        "## Passes",
        "",
        "| # | pass | seconds | test accuracy |",
        "|---|---|---|---|",
    ]
    lines += [f"| {i} | {p['name']} | {p['seconds']} | {_pct(p['test_accuracy'])} |" for i, p in enumerate(r["passes"], 1)]
    lines += ["", "## Layers", "",
              "| layer | shape | engine | multipliers | bits | sparsity | weight bits | acc bits | est. cycles |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| `{x['name']}` | {x['shape'][0]}x{x['shape'][1]} | {x['engine']} | {x['multipliers']} | {x['bits']} | "
              f"{x['sparsity']:.2%} | {x['weight_bits']:,} | {x['acc_bits']} | {x['estimated_cycles']:,} |"
              for x in r["layers"]]
    sim = r.get("simulation")
    lines += ["", "## Hardware", "",
              f"- multipliers: {hw['multipliers']}, ROM bits: {hw['rom_bits']:,}",
              f"- estimated cycles per inference: {hw['estimated_cycles_per_inference']:,}",
              f"- simulated cycles per inference: "
              + (f"{sim['cycles_per_inference']} ({sim['simulator']}, {sim['samples']} samples, "
                 f"{sim['mismatches']} mismatches)" if sim else "not simulated yet (run `mpc simulate`)"),
              ""]
    return "\n".join(lines)
