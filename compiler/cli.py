"""`mpc`: the command line. Errors the user can fix print one line and exit 2, never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import signal
import sys
from pathlib import Path

from compiler.fpga.devices import TARGETS
from compiler.outdir import handle_signals

DESCRIPTION = """\
mpc: a hardware-aware compression compiler for neural-network classifiers.

  mpc check model.onnx
  mpc compile model.onnx --data data.npz --target fpga -o build/
  mpc simulate build/ --samples 256 [--simulator verilator] [--serial]
  mpc audit build/ [--attacks threshold,shadow,lira,label_only] [--shadows 16]
  mpc audit build/ --attacks backdoor --trigger trigger.npz
  mpc compare build-a/ build-b/ ... [--html compare.html]
  mpc explore model.onnx --data data.npz --space space.toml -o explore/ [--workers N] [--budget N]

check: what mpc will do with every node (engine, fused, folded, refused and why), no data needed.
compile: ONNX -> passes (canonicalize, [admm, circulant,] lower, plan) -> integer graph
(graph.json + params.npz), model.int.onnx, synthesizable Verilog (rtl/) and report.md/json.
simulate: runs the generated Verilog in a cocotb testbench and compares every output with
the golden integer executor, bit for bit.
audit: membership-inference attacks on the original float model and on the compiled model's
exact integer outputs (audit.json, ROC plots, report.md section; docs/audit.md); with a
trigger file, the backdoor's attack success rate on both (docs/security.md).
compare: one table across builds (accuracy, compression, hardware cost, cycles, energy, attacks).
explore: a grid (or a budgeted search) of recipes, each point built as a Ray task; results table,
Pareto set and plots (docs/explore.md).
"""


SEED_MAX = 2**32 - 1  # numpy's legacy seeding takes 0..2**32-1; passes add small offsets for torch


class ArgumentsError(Exception):
    """A bad command line: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (`mpc compile: error: ...`) and no usage block."""

    def error(self, message: str):
        # "argument --seed: --seed must be ..." -> "--seed must be ..." (our checks name the option)
        m = re.fullmatch(r"argument [^:]+: (--\S+ .*)", message)
        raise ArgumentsError(f"{self.prog}: error: {m.group(1) if m else message}")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"--seed must be an integer in 0..{SEED_MAX} (got {text!r})")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"--synth-timeout must be a positive number of seconds (got {text!r}; --no-synth skips synthesis)"
        )
    return value


def _non_negative(option: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"{option} must be an integer >= 0 (got {text!r})")
        return value

    return parse


def _accuracy(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"--bitflip-target must be an accuracy in 0..1 (got {text!r})")
    return value


def _positive(option: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{option} must be an integer >= 1 (got {text!r})")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mpc", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser(
        "compile",
        help="compile an ONNX classifier to an integer graph and Verilog",
        description="Compile MODEL.onnx into OUT/: checkpoints after every pass, the integer graph, "
        "model.int.onnx, rtl/ and report.md/json. OUT is written completely or not at all.",
    )
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
    c.add_argument("--seed", type=_seed, default=0, help="seed for every random choice (default: 0)")
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
        type=_seconds,
        default=300.0,
        metavar="SECONDS",
        help="time allowed to yosys synthesis before the report notes a timeout (default: 300); for an iCE40 "
        "target also to each synthesis of the fitting and to place and route",
    )

    ch = sub.add_parser(
        "check",
        help="say what mpc will do with every node of a model, without data or compiling",
        description="Print, for every node of MODEL.onnx, what mpc will do with it: imported as which op "
        "and where that op ends up in hardware (which engine, fused, free), folded as a constant, "
        "removed by import normalization, or refused and why. Exits 2 if anything is refused.",
    )
    ch.add_argument("model", type=Path, help="the ONNX model to check")

    k = sub.add_parser(
        "compare",
        help="compare builds: accuracy, compression, hardware cost, energy, attacks",
        description="Print one table across builds from each OUT/report.json (and OUT/audit.json "
        "where `mpc audit` ran); optionally write an HTML page with plots.",
    )
    k.add_argument("outs", type=Path, nargs="+", metavar="OUT", help="folders written by `mpc compile`")
    k.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML page with plots")

    s = sub.add_parser(
        "simulate",
        help="simulate the generated Verilog against the golden executor",
        description="Run OUT/rtl in a cocotb testbench on the first N test samples, compare every "
        "logit and the argmax with the golden integer executor, write OUT/sim.json. "
        "Exits 1 on any mismatch.",
    )
    s.add_argument("out", type=Path, help="a folder written by `mpc compile`")
    s.add_argument("--samples", type=int, default=64, help="number of test samples to simulate (default: 64)")
    s.add_argument(
        "--simulator",
        default="icarus",
        choices=["icarus", "verilator"],
        help="icarus (default) or verilator (compiles slower, runs faster)",
    )
    s.add_argument(
        "--serial",
        action="store_true",
        help="simulate the board top instead (rtl/serial_top.v: the design behind a UART, driven through its "
        "rx/tx pins); writes OUT/sim_serial.json and leaves the report as it is",
    )

    from compiler.audit import ATTACK_NAMES, DEFAULT_ATTACKS, DEFAULT_TARGETS, GROUPS

    a = sub.add_parser(
        "audit",
        help="membership-inference (and backdoor, bit-flip) audit: original vs compiled model",
        description="Attack OUT's models with members = x_train, non-members = x_test of the build's "
        "data (balanced by subsampling). Writes OUT/audit.json, OUT/audit_roc_<target>.png "
        "and the Membership inference section of OUT/report.md. See docs/audit.md. With --attacks backdoor "
        "--trigger TRIGGER.npz: the trigger's attack success rate and clean accuracy. With --attacks bitflip: "
        "the fewest ROM bit flips of the compiled design that bring its accuracy to random guessing (BFA's "
        "progressive bit search), against random flips, simulated with the flipped ROMs (docs/security.md).",
    )
    a.add_argument("out", type=Path, help="a folder written by `mpc compile`")
    a.add_argument(
        "--attacks",
        default=DEFAULT_ATTACKS,
        help=f"comma-separated attacks ({', '.join(ATTACK_NAMES)}, backdoor with --trigger, bitflip) or groups "
        f"({', '.join(GROUPS)}); default: {DEFAULT_ATTACKS}",
    )
    a.add_argument("--shadows", type=int, default=16, help="number of shadow models K (default: 16)")
    a.add_argument("--seed", type=_seed, default=0, help="seed of subsampling, shadows and attack models (default: 0)")
    a.add_argument("--data", type=Path, help="DATA.npz (default: the data the build was compiled with)")
    a.add_argument(
        "--targets",
        default=DEFAULT_TARGETS,
        help=f"comma-separated: original, compiled, or checkpoint folder names (default: {DEFAULT_TARGETS})",
    )
    a.add_argument(
        "--trigger",
        type=Path,
        metavar="TRIGGER.npz",
        help="for --attacks backdoor: mask and pattern (the model's input shape) and target (the attacker's "
        "class); triggered x = x*(1-mask) + pattern*mask; the attack success rate is measured on test samples "
        "of the other classes (docs/security.md)",
    )
    a.add_argument(
        "--bitflip-batch",
        type=_positive("--bitflip-batch"),
        default=128,
        metavar="N",
        help="bitflip: training rows the attacker holds and ranks bits on (default: 128, as in BFA)",
    )
    a.add_argument(
        "--bitflip-target",
        type=_accuracy,
        metavar="ACC",
        help="bitflip: test accuracy to bring the model down to (default: 1/classes + 0.01, random guessing)",
    )
    a.add_argument(
        "--bitflip-max",
        type=_positive("--bitflip-max"),
        default=100,
        metavar="N",
        help="bitflip: most flips the search commits before giving up (default: 100)",
    )
    a.add_argument(
        "--bitflip-eval",
        type=_positive("--bitflip-eval"),
        default=1000,
        metavar="N",
        help="bitflip: test rows the accuracy after every flip is measured on (default: 1000)",
    )
    a.add_argument(
        "--bitflip-simulate",
        type=_non_negative("--bitflip-simulate"),
        default=16,
        metavar="N",
        help="bitflip: test rows simulated with the flipped ROM files against the golden executor "
        "(default: 16; 0 skips)",
    )
    a.add_argument(
        "--bitflip-simulator",
        choices=("icarus", "verilator"),
        default="icarus",
        help="bitflip: the simulator of --bitflip-simulate (default: icarus; verilator is much faster on large "
        "protected designs)",
    )
    a.add_argument(
        "--adaptive",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the attacker knows the recipe: every shadow also goes through the build's own passes (pruning, "
        "defenses, quantization, lower) and each target is attacked again with shadows built like it "
        "(audit.json: adaptive_attacks). Default: on when that replay trains nothing (a quantized build), off "
        "when it would retrain every shadow (admm, minmax, dp_sgd, ...): give --adaptive to pay for it",
    )
    a.add_argument("--shadow-epochs", type=int, default=60, help="shadow training epochs (default: 60)")
    a.add_argument("--shadow-lr", type=float, default=3e-3, help="shadow training Adam learning rate (default: 3e-3)")
    a.add_argument("--shadow-batch-size", type=int, default=64, help="shadow training minibatch (default: 64)")
    a.add_argument("--quiet", action="store_true", help="print only errors and the summary")
    a.add_argument(
        "--workers",
        type=_positive("--workers"),
        metavar="N",
        default=1,
        help="train the shadow models as Ray tasks, N at once (default: 1, in this process); same numbers",
    )
    a.add_argument("--address", metavar="RAY_ADDRESS", help="train the shadows on the Ray cluster at this address")

    e = sub.add_parser(
        "explore",
        help="design-space exploration: build every recipe of a space (Ray tasks), Pareto set, plots",
        description="Build every point of SPACE.toml, a recipe in which any option may be a list of values "
        "to try (each list an axis of the grid; an option that is already a list, like passes, as a list of "
        "lists), and [explore] objectives = [...] to rank them by. Each point is a Ray task (compile, and "
        "simulate or audit where the objectives need it) into EXPLORE/points/<id>/; EXPLORE/results.csv and "
        ".json hold one row per point with every metric and the Pareto set, EXPLORE/index.html the plots. "
        "Points already built are skipped (a killed sweep resumes); a failed point is recorded and the sweep "
        "goes on (exit 1 at the end). See docs/explore.md.",
    )
    e.add_argument("model", type=Path, help="the ONNX model (or a checkpoint folder, as for compile)")
    e.add_argument("--data", type=Path, required=True, metavar="DATA.npz", help="the data, as for compile")
    e.add_argument(
        "--space", type=Path, required=True, metavar="SPACE.toml", help="a recipe with lists as axes, and [explore]"
    )
    e.add_argument("-o", "--out", type=Path, required=True, metavar="EXPLORE", help="a new folder, or one to resume")
    e.add_argument(
        "--workers",
        type=_positive("--workers"),
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
        type=_positive("--budget"),
        metavar="N",
        help="build at most N points, chosen by a multi-objective search (Optuna's MOTPE) instead of the grid",
    )
    e.add_argument("--quiet", action="store_true", help="print only errors and the summary")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except ArgumentsError as e:
        print(e, file=sys.stderr)
        return 2
    # SIGTERM and SIGHUP end a command as Ctrl-C does: temporary folders removed, children killed
    with handle_signals():
        try:
            return _run(args)
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", signal.SIGINT)
            with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
                print(f"mpc {args.command}: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
            return 128 + signum


def _run(args) -> int:
    from compiler import api  # after parsing, so --help is instant

    try:
        if args.command == "compile":
            log = (lambda *_: None) if args.quiet else print
            report = api.compile(
                args.model,
                args.data,
                args.out,
                target=args.target,
                recipe=args.recipe,
                seed=args.seed,
                force=args.force,
                log=log,
                progress=not args.quiet,
                audit=args.audit,
                synth_timeout=None if args.no_synth else args.synth_timeout,
                place_and_route=not args.no_pnr,
            )
            print(_compile_summary(report, args.out))
            return 0
        if args.command == "check":
            return _check(api, args)
        if args.command == "audit":
            return _audit(api, args)
        if args.command == "compare":
            return _compare(api, args)
        if args.command == "explore":
            return _explore(api, args)
        if args.command == "simulate":
            result = api.simulate(args.out, samples=args.samples, simulator=args.simulator, serial=args.serial)
            if args.serial:
                print(
                    f"{result['simulator']}: serial top, {result['samples']} samples, "
                    f"{result['mismatches']} mismatches, {result['latency_first_vector']} cycles from first byte in "
                    f"to last byte out at "
                    f"{result['clks_per_bit']} cycles per bit ({args.out}/sim_serial.json)"
                )
                return 1 if result["mismatches"] else 0
            print(
                f"{result['simulator']}: {result['samples']} samples, {result['mismatches']} mismatches, "
                f"{result['cycles_per_inference']} cycles per inference ({args.out}/sim.json)"
            )
            return 1 if result["mismatches"] else 0
    except api.MpcError as e:
        print(f"mpc {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 2


def _check(api, args) -> int:
    from compiler.check import check, render
    from compiler.frontend.onnx import FrontendError

    try:
        verdicts = check(args.model)
    except FrontendError as e:
        raise api.MpcError(str(e)) from None
    print(render(args.model, verdicts))
    return 2 if any(v.status == "refused" for v in verdicts) else 0


def _compare(api, args) -> int:
    from compiler.report.compare import CompareError, compare

    try:
        print(compare(args.outs, html_path=args.html))
    except CompareError as e:
        raise api.MpcError(str(e)) from None
    except OSError as e:
        raise api.MpcError(f"{args.html}: cannot write ({e.strerror})") from None
    if args.html:
        print(f"wrote {args.html}")
    return 0


def _audit(api, args) -> int:
    from compiler.audit.bitflip import BitflipConfig
    from compiler.exec.train import TrainConfig

    if args.shadow_epochs < 1 or args.shadow_batch_size < 1 or not args.shadow_lr > 0:
        raise api.MpcError("--shadow-epochs and --shadow-batch-size must be >= 1 and --shadow-lr > 0")
    log = (lambda *_: None) if args.quiet else print
    result = api.audit(
        args.out,
        attacks=args.attacks,
        shadows=args.shadows,
        seed=args.seed,
        data=args.data,
        targets=args.targets,
        trigger=args.trigger,
        log=log,
        progress=not args.quiet,
        shadow_training=TrainConfig(epochs=args.shadow_epochs, lr=args.shadow_lr, batch_size=args.shadow_batch_size),
        workers=args.workers,
        address=args.address,
        adaptive=args.adaptive,
        bitflip=BitflipConfig(
            batch=args.bitflip_batch,
            target=args.bitflip_target,
            max_flips=args.bitflip_max,
            eval_samples=args.bitflip_eval,
            simulate=args.bitflip_simulate,
            simulator=args.bitflip_simulator,
            seed=args.seed,
        ),
    )
    for name, target in result["targets"].items():
        attacked = f", {_attack_summary(target['attacks'])}" if target["attacks"] else ""
        print(f"{name}: test accuracy {target['test_accuracy']:.4f}{attacked}")
        if "adaptive_attacks" in target:
            print(f"{name}, adaptive: {_attack_summary(target['adaptive_attacks'])}")
    print(f"audit: {args.out}/audit.json, {args.out}/report.md")
    return 0


def _explore(api, args) -> int:
    log = (lambda *_: None) if args.quiet else print
    results = api.explore(
        args.model,
        args.data,
        args.space,
        args.out,
        workers=args.workers,
        address=args.address,
        budget=args.budget,
        log=log,
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


def _attack_summary(attacks: dict) -> str:
    """The strongest membership attack (highest AUC) and the backdoor's success rate, where run."""
    parts = []
    membership = {a: m for a, m in attacks.items() if "auc" in m}
    if membership:
        name, m = max(membership.items(), key=lambda kv: kv[1]["auc"])
        parts.append(f"strongest attack {name} (AUC {m['auc']:.3f}, balanced accuracy {m['balanced_accuracy']:.3f})")
    if "backdoor" in attacks:
        asr = attacks["backdoor"]["attack_success_rate"]
        parts.append("backdoor attack success rate " + ("n/a" if asr is None else f"{asr:.4f}"))
    if "bitflip" in attacks:
        b = attacks["bitflip"]
        reached = "not reached" if b["flips_to_target"] is None else f"{b['flips_to_target']} flips"
        random = b["random_flips_for_same_drop"]
        parts.append(f"bit flips to accuracy {b['target_accuracy']}: {reached} (random flips: {random})")
    return ", ".join(parts)


def _compile_summary(report: dict, out: Path) -> str:
    f, c = report["float"]["test_accuracy"], report["compiled"]["test_accuracy"]
    acc = "" if f is None else f"float test accuracy {f:.4f}, integer {c:.4f}; "
    return f"{acc}compression {report['model']['compression_ratio']}x; report: {out}/report.md"


if __name__ == "__main__":
    sys.exit(main())
