"""`mpc compile MODEL --data DATA -o OUT`: the whole flow into a build folder (compiler/api.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler.cli.common import log_of, seconds, seed
from compiler.fpga.devices import TARGETS

HELP = "compile an ONNX classifier to an integer graph and Verilog"
DESCRIPTION = (
    "Compile MODEL.onnx into OUT/: checkpoints after every pass, the integer graph, "
    "model.int.onnx, rtl/ and report.md/json. OUT is written completely or not at all."
)


def add_arguments(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "model",
        type=Path,
        help="trained classifier in ONNX, opset 13+ as torch exports it or hand-written: an MLP (Gemm, "
        "MatMul+Add) or a CNN (Conv 2-D, MaxPool, AveragePool, GlobalAveragePool, "
        "BatchNormalization), with Relu, Flatten/Reshape, Softmax; or a checkpoint folder of an earlier "
        "build (OUT/checkpoints/NN-<pass>): from NN-lower only the plan pass runs, so a design is "
        "re-planned with new [plan] options (multipliers, engine) without recalibrating",
    )
    c.add_argument(
        "--data",
        type=Path,
        help="DATA.npz with x_train, y_train (members), x_test, y_test (non-members); "
        "needed to calibrate quantization and to measure accuracy",
    )
    c.add_argument(
        "--target",
        default="fpga",
        choices=TARGETS,
        help="hardware target (default: fpga): fpga (Xilinx 7-series resource counts, assumed clock), asic "
        "(generic cells, NAND2 area), ice40-up5k / ice40-hx8k (the design fitted to the device, placed and routed "
        "with nextpnr-ice40, measured Fmax, a bitstream for the iCEBreaker / HX8K breakout board in OUT/fpga/), "
        "xc7a35t (resource counts against the part; assumed clock). See docs/fpga.md",
    )
    c.add_argument("-o", "--out", type=Path, required=True, help="output folder (must not exist unless --force)")
    c.add_argument("--recipe", type=Path, help="RECIPE.toml: `passes = [...]`, per-pass tables, [<pass>.layers.<node>]")
    c.add_argument("--seed", type=seed, default=0, help="seed for every random choice (default: 0)")
    c.add_argument(
        "--force",
        action="store_true",
        help="replace OUT if it is an earlier mpc build (never a folder with files mpc did not write)",
    )
    c.add_argument("--quiet", action="store_true", help="print only errors and the final line")
    c.add_argument("--audit", action="store_true", help="run `mpc audit OUT` (default attacks) as the last stage")
    c.add_argument(
        "--no-pnr",
        action="store_true",
        help="iCE40 targets: fit the design to the device by synthesis, but do not place and route it (no Fmax, "
        "no bitstream; the clock in the report is then assumed)",
    )
    c.add_argument(
        "--no-synth",
        action="store_true",
        help="skip yosys synthesis, and for an iCE40 target the fitting and place and route (the report notes it)",
    )
    c.add_argument(
        "--synth-timeout",
        type=seconds,
        default=300.0,
        metavar="SECONDS",
        help="time allowed to yosys synthesis before the report notes a timeout (default: 300); for an iCE40 "
        "target also to each synthesis of the fitting and to place and route",
    )


def run(args) -> int:
    from compiler import api  # after parsing, so --help is instant

    report = api.compile(
        args.model,
        args.data,
        args.out,
        target=args.target,
        recipe=args.recipe,
        seed=args.seed,
        force=args.force,
        log=log_of(args),
        progress=not args.quiet,
        audit=args.audit,
        synth_timeout=None if args.no_synth else args.synth_timeout,
        place_and_route=not args.no_pnr,
    )
    print(summary(report, args.out))
    return 0


def summary(report: dict, out: Path) -> str:
    f, c = report["float"]["test_accuracy"], report["compiled"]["test_accuracy"]
    acc = "" if f is None else f"float test accuracy {f:.4f}, integer {c:.4f}; "
    if report.get("task") == "regression" and report["float"].get("test_mse") is not None:
        fl, co = report["float"], report["compiled"]
        acc = f"float test MSE {fl['test_mse']:.6g}, integer {co['test_mse']:.6g}; "
        if fl.get("test_auc") is not None:
            acc += f"anomaly AUC float {fl['test_auc']:.4f}, integer {co['test_auc']:.4f}; "
    return f"{acc}compression {report['model']['compression_ratio']}x; report: {out}/report.md"
