"""The four MLPerf Tiny reference models through mpc: check, compile (int8, ADMM, circulant),
simulate, fit to FPGAs (issue 27).

    python benchmarks/mlperf_tiny.py [--quick] [--models kws,ic,vww,ad] [--samples N]
                                     [--variants int8,admm,circulant] [--simulator verilator]

Each model (benchmarks/mlperf_models.py: DS-CNN, ResNet-8, MobileNetV1 x0.25, the FC autoencoder)
is trained briefly (CIFAR-10 for ResNet-8, synthetic data of the reference's input shape for the
others: the first table says which), exported by both torch.onnx exporters and put through
`mpc check`; the TorchScript export is then compiled for xc7a35t at int8 (the default flow), with
ADMM (4-bit weights, 80% of them pruned) and block-circulant (b = 8), each build simulated on N
test samples; the int8 build is also fitted to ice40-up5k and ice40-hx8k by synthesis. One table
gives float vs integer accuracy (the autoencoder: reconstruction MSE and anomaly AUC), ROM bits,
multipliers, simulated cycles per inference, LUT/FF/DSP/BRAM, the iCE40 fits, the three energy
baselines and the simulator's samples/s. Whatever mpc refuses prints its one-line error in its row.
--quick: smaller training budgets, 4 samples, int8 only, no iCE40 fitting.

hls4ml's and FINN's published MLPerf Tiny v0.7 figures are printed beside the table, labelled as
theirs: they are measured on a board (Pynq-Z2) with their own, differently trained and quantized
models, and compare only in kind with the figures here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.mlperf_models import DATA_SOURCES, EXPORTERS, MODELS, auc, build
from compiler import api
from compiler.errors import MpcError

ADMM_RECIPE = """passes = ["canonicalize", "admm", "lower"]
[admm]
global_sparsity = 0.8
bits = 4
admm_epochs = {epochs}
retrain_epochs = {epochs}
"""
CIRCULANT_RECIPE = """passes = ["canonicalize", "circulant", "lower"]
[circulant]
block_size = 8
epochs = {epochs}
"""
VARIANTS = {"int8": None, "admm": ADMM_RECIPE, "circulant": CIRCULANT_RECIPE}
ICE40 = ("ice40-up5k", "ice40-hx8k")

# hls4ml + FINN, MLPerf Tiny v0.7, open division, Pynq-Z2 (mlcommons/tiny_results_v0.7,
# open/hls4ml-finn/results/pynq-z2/<task>/<model>/{performance,power}): their models, their board.
PUBLISHED = [
    ("kws", "FINN KWS-W3A3 (3-bit MLP on MFCCs)", "17.5-18.7 us", "~30 uJ"),
    ("ad", "hls4ml AD08 (quantized FC autoencoder)", "17.5-18.7 us", "~30 uJ"),
    ("ic", "hls4ml RN07 (reduced ResNet)", "27.3 ms", "-"),
    ("ic", "FINN CNV-W1A1 (binarized CNN)", "1.5 ms", "-"),
]


def quiet(*_args, **_kwargs) -> None:
    pass


def one_line(error: BaseException) -> str:
    """mpc's own errors are one line already; anything else is a bug, named by its type."""
    text = " ".join(str(error).split())
    return text if isinstance(error, MpcError) else f"{type(error).__name__}: {text} (a bug, not a refusal)"


# ---- check --------------------------------------------------------------------------------------
def check_model(path: Path) -> dict:
    """`mpc check`'s verdicts, summed up: nodes, refused nodes and their distinct reasons."""
    from compiler.check import check

    try:
        verdicts = check(path)
    except Exception as e:  # the row says what went wrong
        return {"nodes": 0, "refused": [], "failed": one_line(e)}
    refused = [v for v in verdicts if v.status == "refused"]
    return {"nodes": len(verdicts), "refused": refused, "failed": None}


def refusal_summary(result: dict) -> str:
    if result["failed"]:
        return result["failed"]
    if not result["refused"]:
        return "supported"
    reasons = sorted({f"{v.op_type}: {v.detail}" for v in result["refused"]})
    return f"{len(result['refused'])} refused: " + " | ".join(reasons)


# ---- compile, simulate --------------------------------------------------------------------------
def compile_variant(built, variant: str, work: Path, epochs: int, target: str = "xc7a35t", **options) -> dict:
    recipe, template = None, VARIANTS[variant]
    if template is not None:
        recipe = work / f"{built.key}_{variant}.toml"
        recipe.write_text(template.format(epochs=epochs))
    out = work / f"{built.key}_{variant}_{target}"
    start = time.perf_counter()
    try:
        report = api.compile(
            built.model_paths["torchscript"],
            built.data_path,
            out,
            target=target,
            recipe=recipe,
            log=quiet,
            progress=False,
            force=True,
            **options,
        )
    except Exception as e:  # a refusal (or a bug) goes in the row, the table goes on
        return {"failed": one_line(e), "seconds": time.perf_counter() - start}
    return {"out": out, "report": report, "seconds": time.perf_counter() - start}


def simulate(build_result: dict, samples: int, simulator: str) -> dict:
    try:
        return api.simulate(build_result["out"], samples=samples, simulator=simulator, log=quiet)
    except Exception as e:
        return {"failed": one_line(e)}


def integer_metrics(build_result: dict, data_path: Path) -> dict:
    """Float and integer figures of a build: test accuracy from the report for a classifier; for
    the autoencoder, the reconstruction MSE and anomaly AUC of the imported float graph and of the
    compiled integer graph (golden executor) on x_test, computed here from the graphs."""
    report = build_result["report"]
    if "y_test" in np.load(data_path).files:
        return {"float": report["float"]["test_accuracy"], "int": report["compiled"]["test_accuracy"]}
    from compiler.exec import predict_logits
    from compiler.ir import Graph

    with np.load(data_path) as npz:
        x, anomalous = npz["x_test"], npz["a_test"]
    out = build_result["out"]
    figures = {}
    for name, graph in (("float", Graph.load(out / "checkpoints" / "00-import")), ("int", Graph.load(out))):
        errors = ((predict_logits(graph, x).reshape(len(x), -1) - x.reshape(len(x), -1)) ** 2).mean(axis=1)
        figures[name] = float(errors.mean())
        figures[f"{name}_auc"] = auc(errors, anomalous)
    return figures


# ---- the run ------------------------------------------------------------------------------------
def run_model(key: str, args, work: Path) -> dict:
    print(f"== {MODELS[key].title}: training ({DATA_SOURCES[key]})", flush=True)
    built = build(key, work / "models", EXPORTERS, budget=args.budget)
    row: dict = {"built": built, "checks": {e: check_model(p) for e, p in built.model_paths.items()}, "builds": {}}
    for variant in args.variants:
        print(f"   {variant}: compiling for xc7a35t", flush=True)
        result = compile_variant(built, variant, work, args.epochs, synth_timeout=args.synth_timeout)
        if "report" in result:
            result["metrics"] = integer_metrics(result, built.data_path)
            print(f"   {variant}: simulating {args.samples} samples ({args.simulator})", flush=True)
            result["simulation"] = simulate(result, args.samples, args.simulator)
        if variant == "int8" and args.ice40:
            result["ice40"] = {}
            for device in ICE40:
                print(f"   int8: fitting to {device}", flush=True)
                fit = compile_variant(
                    built, variant, work, args.epochs, target=device, place_and_route=False, synth_timeout=600.0
                )
                result["ice40"][device] = fit
        row["builds"][variant] = result
    return row


def ice40_cell(fit: dict | None) -> str:
    if fit is None:
        return "-"
    if "failed" in fit:
        return "refused: " + fit["failed"]
    hw = fit["report"]["hardware"]
    util = hw.get("utilization") or {}
    parts = [f"{k} {v[0]}/{v[1]}" for k, v in util.items() if k in ("logic", "dsp", "block_ram")]
    return f"fits, {hw.get('multipliers')} mults" + (f" ({', '.join(parts)})" if parts else "")


def print_checks(rows: dict) -> None:
    print("\n`mpc check` on the models as torch.onnx writes them")
    print("(float: the torch model on x_test after its brief training, before export)")
    print(f"{'model':24} {'params':>8} {'data':9} {'float':22} {'exporter':12} {'nodes':>5}  verdict")
    for key, row in rows.items():
        built = row["built"]
        source = DATA_SOURCES[key].split(":")[0]
        for exporter, result in row["checks"].items():
            print(
                f"{MODELS[key].title:24} {built.params:8,} {source:9} {float_cell(built.float_metrics):22} "
                f"{exporter:12} {result['nodes']:5}  {refusal_summary(result)}"
            )


def float_cell(metrics: dict) -> str:
    if "accuracy" in metrics:
        return f"accuracy {metrics['accuracy']:.4f}"
    return f"MSE {metrics['mse']:.4f} AUC {metrics['auc']:.3f}"


def print_builds(rows: dict, samples: int) -> None:
    print(
        f"\nbuilds for xc7a35t (TorchScript export; cycles from simulation of {samples} samples, us at the "
        "report's clock: xc7a35t's assumed 100 MHz; sim/s: simulated samples per second of the run)"
    )
    print(
        f"{'model':24} {'build':9} {'float':>7} {'int':>7} {'sparse':>6} {'ROM bits':>10} {'mults':>5} "
        f"{'cycles':>9} {'us@clk':>8} {'mism':>4} {'LUT':>6} {'FF':>6} {'DSP':>4} {'BRAM':>5} "
        f"{'/f32DRAM':>9} {'/f32SRAM':>9} {'/uncomp':>7} {'sim/s':>7} {'compile s':>9}"
    )
    for key, row in rows.items():
        for variant, result in row["builds"].items():
            print(f"{MODELS[key].title:24} {variant:9} " + build_cells(result))
            for device, fit in (result.get("ice40") or {}).items():
                print(f"{'':24} {'':9} {device}: {ice40_cell(fit)}")


def build_cells(result: dict) -> str:
    if "failed" in result:
        return f"refused: {result['failed']}"
    hw, m, sim = result["report"]["hardware"], result["metrics"], result["simulation"]
    util = hw.get("utilization") or {}
    base = hw.get("energy_baselines") or {}

    def used(name):
        return str(util[name][0]) if name in util else "n/a"

    def ratio(name):
        return f"{base[name]['ratio']:,.1f}x" if name in base else "n/a"

    if "failed" in sim:
        cycles, latency, mismatches, rate = "n/a", "n/a", "n/a", "n/a"
        tail = f"  simulation refused: {sim['failed']}"
    else:
        cycles, mismatches = f"{sim['cycles_per_inference']:,.0f}", str(sim["mismatches"])
        latency = f"{sim['cycles_per_inference'] / hw['clock_mhz']:,.1f}"
        rate, tail = f"{sim['samples'] / max(sim['run_seconds'], 1e-9):7.2f}", ""
    auc_note = f"  AUC float {m['float_auc']:.3f} int {m['int_auc']:.3f}" if "float_auc" in m else ""
    return (
        f"{m['float']:7.4f} {m['int']:7.4f} {sparsity(result['report']):6.1%} {hw['rom_bits']:10,} "
        f"{hw['multipliers']:5} {cycles:>9} {latency:>8} {mismatches:>4} "
        f"{used('logic'):>6} {used('flip_flops'):>6} {used('dsp'):>4} {used('block_ram'):>5} "
        f"{ratio('float32_dram'):>9} {ratio('float32_sram'):>9} {ratio('uncompressed'):>7} {rate:>7} "
        f"{result['seconds']:9.0f}{auc_note}{tail}"
    )


def sparsity(report: dict) -> float:
    """Share of the original weights that are zero or removed, over all layers."""
    sizes = [int(np.prod(layer["original_shape"])) for layer in report["layers"]]
    pruned = sum(layer["sparsity"] * n for layer, n in zip(report["layers"], sizes, strict=True))
    return pruned / max(sum(sizes), 1)


def print_published() -> None:
    print("\nTHEIRS, for scale (not mpc): hls4ml + FINN, MLPerf Tiny v0.7 open division, Pynq-Z2, their own models")
    print("(mlcommons/tiny_results_v0.7, open/hls4ml-finn/results/pynq-z2/)")
    for key, model, latency, energy in PUBLISHED:
        print(f"  {MODELS[key].title:24} {model:40} latency {latency:>13}  energy {energy}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small training budgets, 4 samples, int8 only, no iCE40")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    ap.add_argument("--variants", default=None, help=f"comma list of {', '.join(VARIANTS)} (default: all; quick: int8)")
    ap.add_argument("--samples", type=int, default=None, help="samples simulated per build (default 16, quick 4)")
    ap.add_argument("--simulator", default="verilator", choices=["icarus", "verilator"])
    ap.add_argument("--synth-timeout", type=float, default=600.0, help="seconds allowed to yosys (xc7a35t)")
    ap.add_argument("--check-only", action="store_true", help="train, export and `mpc check` only")
    ap.add_argument("--work", type=Path, default=None, help="folder for the models and builds (default: a temp dir)")
    args = ap.parse_args(argv)
    args.budget = "quick" if args.quick else "full"
    args.samples = args.samples or (4 if args.quick else 16)
    args.variants = (args.variants or ("int8" if args.quick else ",".join(VARIANTS))).split(",")
    args.epochs = 2 if args.quick else 10
    args.ice40 = not args.quick
    keys = args.models.split(",")
    for name in [*keys, *args.variants]:
        if name not in MODELS and name not in VARIANTS:
            ap.error(f"unknown model or variant {name!r}")
    if args.check_only:
        args.variants = []
    work = args.work or Path(tempfile.mkdtemp(prefix="mpc-mlperf-"))
    rows = {}
    for key in keys:
        try:
            rows[key] = run_model(key, args, work)
        except Exception:  # training or export failed: say so, go on with the others
            print(f"   {key}: failed before mpc ran:\n{traceback.format_exc()}", flush=True)
    print_checks(rows)
    if not args.check_only:
        print_builds(rows, args.samples)
    print_published()
    print(f"\nbuilds in {work}")


if __name__ == "__main__":
    main()
