"""`mpc audit OUT`: membership inference (and backdoor, bit-flip) attacks on a build (compiler/audit/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler.audit.options import ATTACK_NAMES, DEFAULT_ATTACKS, DEFAULT_TARGETS, GROUPS
from compiler.cli.common import accuracy, log_of, non_negative, positive, seed
from compiler.errors import MpcError

HELP = "membership-inference (and backdoor, bit-flip) audit: original vs compiled model"
DESCRIPTION = (
    "Attack OUT's models with members = x_train, non-members = x_test of the build's "
    "data (balanced by subsampling). Writes OUT/audit.json, OUT/audit_roc_<target>.png "
    "and the Membership inference section of OUT/report.md. See docs/audit.md. With --attacks backdoor "
    "--trigger TRIGGER.npz: the trigger's attack success rate and clean accuracy. With --attacks bitflip: "
    "the fewest ROM bit flips of the compiled design that bring its accuracy to random guessing (BFA's "
    "progressive bit search), against random flips, simulated with the flipped ROMs (docs/security.md)."
)


def add_arguments(a: argparse.ArgumentParser) -> None:
    a.add_argument("out", type=Path, help="a folder written by `mpc compile`")
    a.add_argument(
        "--attacks",
        default=DEFAULT_ATTACKS,
        help=f"comma-separated attacks ({', '.join(ATTACK_NAMES)}, backdoor with --trigger, bitflip) or groups "
        f"({', '.join(GROUPS)}); default: {DEFAULT_ATTACKS}",
    )
    a.add_argument("--shadows", type=int, default=16, help="number of shadow models K (default: 16)")
    a.add_argument("--seed", type=seed, default=0, help="seed of subsampling, shadows and attack models (default: 0)")
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
    _add_bitflip_arguments(a)
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
        type=positive("--workers"),
        metavar="N",
        default=1,
        help="train the shadow models as Ray tasks, N at once (default: 1, in this process); same numbers",
    )
    a.add_argument("--address", metavar="RAY_ADDRESS", help="train the shadows on the Ray cluster at this address")


def _add_bitflip_arguments(a: argparse.ArgumentParser) -> None:
    a.add_argument(
        "--bitflip-batch",
        type=positive("--bitflip-batch"),
        default=128,
        metavar="N",
        help="bitflip: training rows the attacker holds and ranks bits on (default: 128, as in BFA)",
    )
    a.add_argument(
        "--bitflip-target",
        type=accuracy,
        metavar="ACC",
        help="bitflip: test accuracy to bring the model down to (default: 1/classes + 0.01, random guessing)",
    )
    a.add_argument(
        "--bitflip-max",
        type=positive("--bitflip-max"),
        default=100,
        metavar="N",
        help="bitflip: most flips the search commits before giving up (default: 100)",
    )
    a.add_argument(
        "--bitflip-eval",
        type=positive("--bitflip-eval"),
        default=1000,
        metavar="N",
        help="bitflip: test rows the accuracy after every flip is measured on (default: 1000)",
    )
    a.add_argument(
        "--bitflip-simulate",
        type=non_negative("--bitflip-simulate"),
        default=16,
        metavar="N",
        help="bitflip: test rows simulated with the flipped ROM files against the golden executor "
        "(default: 16; 0 skips)",
    )
    a.add_argument(
        "--bitflip-simulator",
        choices=("auto", "icarus", "verilator"),
        default="auto",
        help="bitflip: the simulator of --bitflip-simulate (default: auto, as `mpc simulate --simulator auto`: "
        "verilator for long runs or when `mpc simulate` already compiled a verilator model of the build, whose "
        "model the flipped ROM files reuse)",
    )


def run(args) -> int:
    from compiler import api  # after parsing, so --help is instant
    from compiler.audit.bitflip import BitflipConfig
    from compiler.audit.run import score_line
    from compiler.exec.train import TrainConfig

    if args.shadow_epochs < 1 or args.shadow_batch_size < 1 or not args.shadow_lr > 0:
        raise MpcError("--shadow-epochs and --shadow-batch-size must be >= 1 and --shadow-lr > 0")
    result = api.audit(
        args.out,
        attacks=args.attacks,
        shadows=args.shadows,
        seed=args.seed,
        data=args.data,
        targets=args.targets,
        trigger=args.trigger,
        log=log_of(args),
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
        attacked = f", {attack_summary(target['attacks'])}" if target["attacks"] else ""
        print(f"{name}: {score_line(target)}{attacked}")
        if "adaptive_attacks" in target:
            print(f"{name}, adaptive: {attack_summary(target['adaptive_attacks'])}")
    for note in result.get("notes", []):
        print(f"note: {note}")
    print(f"audit: {args.out}/audit.json, {args.out}/report.md")
    return 0


def attack_summary(attacks: dict) -> str:
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
