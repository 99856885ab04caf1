"""`mpc audit OUT`: membership inference on a build's original and compiled models.

1. Evaluation set: members = the build's x_train, non-members = its x_test; the larger is
   subsampled (seeded) to the size n of the smaller, so the 2n points are balanced.
2. The attacker's pool is those same 2n points, labels known, membership unknown. K shadow
   models train on complementary random halves of the pool (shadows.py), so each shadow's
   training set has n points, like the target's when the build's splits are equal in size.
   Shadow membership is the attacker's own coin flips: it carries nothing of the target's.
3. Every target (a prediction function, targets.py) is queried once on the pool; every attack
   (attacks.py) turns its logits into membership scores; metrics.py scores them against the
   true membership. The same shadows serve every target: they model the training procedure
   (float); what differs between targets is only the outputs the attacker observes.
   Adaptive audits (replay.py) also put every shadow through the build's own passes and attack
   each target again with the shadows built like it: `adaptive_attacks` beside `attacks`.
   A regression (graph.meta["task"]) is attacked through its loss, each example's MSE
   (attacks.REGRESSION_ATTACKS); attacks that need class probabilities or a predicted class are
   skipped, each with a one-line note in audit.json's `notes` and the report.
4. Writes OUT/audit.json, OUT/audit_roc_<target>.png, and the "Membership inference" section
   of report.md (through report.json's `privacy` entry, so re-running replaces it).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from compiler.audit import attacks as attack_lib
from compiler.audit.backdoor import Trigger, TriggerError, backdoor_metrics, load_trigger
from compiler.audit.bitflip import BitflipConfig, BitflipError, bitflip_attack
from compiler.audit.metrics import attack_metrics, roc
from compiler.audit.options import (
    BACKDOOR,
    BITFLIP,
    DEFAULT_ATTACKS,
    DEFAULT_TARGETS,
    SPECIAL_ATTACKS,
    AuditError,
    parse_attacks,
    parse_targets,
)
from compiler.audit.plot import plot_roc
from compiler.audit.replay import Replay, ReplayError, build_replay
from compiler.audit.rom_bits import open_design
from compiler.audit.shadows import ShadowSet, derived_seed, replay_shadows, train_shadows
from compiler.audit.targets import Target, TargetError, load_target, shadow_architecture
from compiler.build import Build, BuildError, open_build
from compiler.data import Dataset, is_regression, load_data, regression_scores
from compiler.exec.train import TrainConfig
from compiler.ir import Graph

SCHEMA_VERSION = 1
SHADOW_TRAINING = TrainConfig(epochs=60, batch_size=64, lr=3e-3)


def audit(
    out: str | Path,
    attacks: str | list[str] = DEFAULT_ATTACKS,
    shadows: int = 16,
    seed: int = 0,
    data: str | Path | None = None,
    targets: str | list[str] = DEFAULT_TARGETS,
    shadow_training: TrainConfig = SHADOW_TRAINING,
    log=print,
    progress: bool = True,
    shadow_cache: dict | None = None,
    write: bool = True,
    trigger: str | Path | None = None,
    workers: int | None = 1,
    address: str | None = None,
    bitflip: BitflipConfig | None = None,
    adaptive: bool | None = None,
) -> dict:
    """Audit the build in OUT; return the audit (also written to OUT/audit.json when `write`).

    `shadow_cache`: a dict kept by the caller across audits of builds of the same model and data
    (benchmarks): shadows are reused when architecture, pool, count, training and seed agree.
    `trigger`: TRIGGER.npz for the `backdoor` attack (audit/backdoor.py).
    `workers`, `address`: shadows trained as Ray tasks (compiler/parallel.py); the same numbers.
    `bitflip`: the settings of the `bitflip` attack (audit/bitflip.py), defaults if None.
    `adaptive`: replay the build's recipe on every shadow (replay.py) and attack each target with
    the shadows built like it too; None: when the replay trains nothing (affordable)."""
    out = Path(out)
    attack_names, target_names = parse_attacks(attacks), parse_targets(targets)
    _check_trigger_given(attack_names, trigger)
    if BITFLIP in attack_names and "compiled" not in target_names:
        raise AuditError("the bitflip attack flips the design's ROM bits: add compiled to --targets")
    build = _open_build(out, rtl=BITFLIP in attack_names)
    attack_names, notes = _for_task(build, attack_names)
    needs_shadows = _check_shadow_count(attack_names, shadows)
    start = time.perf_counter()
    loaded = _load_targets(build, target_names)
    dataset = _load_dataset(build, data)
    stamp = _load_trigger(build, trigger) if trigger is not None else None
    x, y, is_member = evaluation_set(dataset, seed)
    n = int(is_member.sum())
    log(f"audit: {n} members (x_train) vs {n} non-members (x_test), attacks {', '.join(attack_names)}")
    shadow_set, arch_source, replay = None, None, None
    if adaptive and not needs_shadows:
        raise AuditError("--adaptive replays the recipe on shadow models, and the chosen attacks use none")
    if needs_shadows:
        arch_source, arch = shadow_architecture(build)
        replay = _replay(build, arch_source, adaptive)
        log(
            f"shadow models: {shadows} x {arch_source}, {n} points each, {shadow_training.epochs} epochs"
            + (f"; then the build's passes ({', '.join(replay.passes) or 'none'}): adaptive" if replay else "")
        )
        shadow_set = _cached_shadows(
            shadow_cache, arch, x, y, shadows, shadow_training, seed, progress, workers, address, replay
        )
    shadow_seconds = time.perf_counter() - start
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "build": str(out),
        "data": dataset.path,
        "n_members": n,
        "n_non_members": n,
        "shadows": shadows if needs_shadows else 0,
        "seed": seed,
        "adaptive": replay is not None,
        "settings": _settings(attack_names, target_names, shadow_set, arch_source, stamp, replay)
        | ({"bitflip": asdict(bitflip or BitflipConfig(seed=seed))} if BITFLIP in attack_names else {}),
        "shadow_models": shadow_set.summary() if shadow_set else None,
        "targets": {},
    }
    if notes:  # a regression: the attacks skipped, and why
        result["notes"] = notes
    curves = {}
    context = {"build": build, "bitflip": bitflip or BitflipConfig(seed=seed), "replay": replay}
    for target in loaded:
        result["targets"][target.name], curves[target.name] = _audit_target(
            target, dataset, x, y, is_member, attack_names, shadow_set, seed, log, stamp, context
        )
    result["seconds"] = {"shadows": round(shadow_seconds, 2), "total": round(time.perf_counter() - start, 2)}
    if write:
        plots = _write(out, result, curves)
        log(f"wrote {out}/audit.json" + "".join(f", {p}" for p in plots))
    return result


def _check_trigger_given(attack_names: list[str], trigger) -> None:
    if BACKDOOR in attack_names and trigger is None:
        raise AuditError("the backdoor attack needs --trigger TRIGGER.npz (mask, pattern, target; docs/security.md)")
    if trigger is not None and BACKDOOR not in attack_names:
        raise AuditError("--trigger is read by the backdoor attack only: add backdoor to --attacks")


def _load_trigger(build: Build, path) -> Trigger:
    original = build.checkpoints["00-import"]
    try:
        return load_trigger(
            path,
            original.inputs[0].shape,
            max(int(np.prod(original.outputs[0].shape)), 2),  # one output: a binary classifier
            layout=original.meta.get("input_layout"),
        )
    except TriggerError as e:
        raise AuditError(str(e)) from None


def _for_task(build: Build, attack_names: list[str]) -> tuple[list[str], list[str]]:
    """The attacks that apply to the build's task, and a note per attack skipped. A regression
    has no classes: the membership attacks that read class probabilities or a predicted class
    are skipped; the backdoor (a target class) and the bit-flip search (class accuracy) refused."""
    if not is_regression(build.graph):
        return attack_names, []
    refused = [a for a in attack_names if a in SPECIAL_ATTACKS]
    if refused:
        raise AuditError(
            f"the {refused[0]} attack is defined on classes; this build is a regression (task in report.json)"
        )
    skipped = [a for a in attack_names if a in attack_lib.REGRESSION_SKIPS]
    kept = [a for a in attack_names if a not in skipped]
    notes = [f"{a} skipped: a regression's outputs are values ({attack_lib.REGRESSION_SKIPS[a]})" for a in skipped]
    if not kept:
        raise AuditError(f"none of the chosen attacks applies to a regression ({'; '.join(notes)})")
    return kept, notes


def _replay(build: Build, arch_source: str, adaptive: bool | None) -> Replay | None:
    """The recipe replay when the audit is adaptive; `None` (auto) is adaptive when the replay is
    affordable: recorded, and training nothing (canonicalize, lower: a quantized build)."""
    if adaptive is False:
        return None
    try:
        replay = build_replay(build, arch_source)
    except ReplayError as e:
        if adaptive:
            raise AuditError(str(e)) from None
        return None
    return replay if adaptive or not replay.trains else None


def _check_shadow_count(attack_names: list[str], shadows: int) -> bool:
    """Whether shadows are needed; at least two (one IN, one OUT per point) when they are."""
    needing = [a for a in attack_names if a in attack_lib.NEEDS_SHADOWS]
    if needing and shadows < 2:
        raise AuditError(f"--shadows must be at least 2 for {', '.join(needing)} (got {shadows})")
    return bool(needing)


def _load_targets(build: Build, names: list[str]) -> list[Target]:
    try:
        return [load_target(build, name) for name in names]
    except TargetError as e:
        raise AuditError(str(e)) from None


def _open_build(out: Path, rtl: bool) -> Build:
    """Every file the audit reads (report.json, graph.json + params.npz of the build and of each
    checkpoint; `rtl`: the design and its ROM files, for the bit-flip attack), checked before
    anything runs: a damaged one is named, with "recompile" (compiler/build.py)."""
    try:
        build = open_build(out, checkpoints=True)
        if rtl:
            open_design(build)
    except BuildError as e:
        raise AuditError(str(e)) from None
    return build


def _load_dataset(build: Build, data) -> Dataset:
    out = build.out
    if data is None:
        data = build.report.get("data")
        if data is None:
            raise AuditError(f"{out}: the build was compiled without data; give --data DATA.npz")
        if not isinstance(data, str) or not data:
            raise AuditError(f"{out}/report.json: damaged (its 'data' is not a file name); recompile the build")
        if not Path(data).is_file():
            raise AuditError(f"{data} (the build's data, from report.json): no such file; give --data DATA.npz")
    original = build.checkpoints["00-import"]
    dataset = load_data(
        data,
        original.inputs[0].shape,
        int(np.prod(original.outputs[0].shape)),
        layout=original.meta.get("input_layout"),  # an NHWC model's data stays NHWC (docs/ir.md)
        output_shape=original.outputs[0].shape,
    )
    if dataset.regression != is_regression(build.graph):
        raise AuditError(
            f"{dataset.path}: its task ({dataset.task}) is not the build's "
            f"({build.graph.meta.get('task', 'classification')}); give the build's own DATA.npz"
        )
    return dataset


def evaluation_set(data: Dataset, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, is_member): n members from x_train then n non-members from x_test, n the smaller
    split's size; the larger split is subsampled without replacement (seeded)."""
    n = min(len(data.x_train), len(data.x_test))
    rng = np.random.default_rng(derived_seed(seed, 0))
    members = np.sort(rng.choice(len(data.x_train), n, replace=False))
    non_members = np.sort(rng.choice(len(data.x_test), n, replace=False))
    x = np.concatenate([data.x_train[members], data.x_test[non_members]])
    y = np.concatenate([data.y_train[members], data.y_test[non_members]])
    return x, y, np.arange(2 * n) < n


def _cached_shadows(
    cache, arch: Graph, x, y, count, config, seed, progress, workers=1, address=None, replay: Replay | None = None
) -> ShadowSet:
    """The plain shadows (trained once per architecture, pool, count, training and seed) and, for an
    adaptive audit, those shadows put through the build's recipe. `cache`: the caller's, kept
    across audits (benchmarks), or None for this audit alone."""
    cache = {} if cache is None else cache
    shape = json.dumps(
        [[n.op, n.inputs, n.outputs] for n in arch.nodes] + [[k, list(v.shape)] for k, v in arch.params.items()]
    )
    digest = hashlib.sha1(shape.encode() + np.ascontiguousarray(x).tobytes() + y.tobytes()).hexdigest()
    key = (digest, count, repr(config), seed)
    if key not in cache:  # the plain shadows, and their models: every build's recipe replays on them
        cache[key] = train_shadows(arch, x, y, count, config, seed, progress, workers, address)
    if replay is None:
        return cache[key]
    if (key, replay) not in cache:
        cache[key, replay] = replay_shadows(cache[key], x, y, replay, seed, progress, workers, address)
    return cache[key, replay]


def _settings(attack_names, target_names, shadow_set, arch_source, trigger: Trigger | None, replay) -> dict:
    return {
        "attacks": attack_names,
        "targets": target_names,
        "evaluation": "members = x_train, non-members = x_test, the larger subsampled to the smaller (seeded)",
        "shadow_pool": "the 2n evaluation points with their labels (membership unknown to the attacker); "
        "shadows train on complementary random halves"
        if shadow_set
        else None,
        "shadow_architecture": arch_source,
        "shadow_training": shadow_set.training() if shadow_set else None,
        "shadows_for_integer_targets": "float shadows (they model the training procedure); scores use the "
        "target's exact outputs",
        # adaptive: every shadow then went through these passes with the build's recipe (replay.py)
        "adaptive_replay": replay.describe() if replay else None,
        "adaptive_shadows_for_targets": "each target is attacked again with the shadows as built to its own "
        "checkpoint (`compiled`: the whole replay; `original`: the plain shadows)"
        if replay
        else None,
        "lira_variance": (
            "per_example" if shadow_set and shadow_set.count >= attack_lib.PER_EXAMPLE_VARIANCE_FROM else "global"
        ),
        "threshold": "metrics at the balanced-accuracy-optimal threshold on the evaluation set; `calibrated`: "
        "at the attack's own decision, chosen without evaluation labels",
        "backdoor": {
            "trigger": trigger.path,
            "target_class": trigger.target,
            "attack_success_rate": "share of x_test rows whose label is not the target class that the model "
            "classifies as the target once triggered (x * (1 - mask) + pattern * mask)",
        }
        if trigger
        else None,
    }


def _audit_target(
    target: Target, data: Dataset, x, y, is_member, attack_names, shadow_set, seed, log, trigger, context
):
    membership = [a for a in attack_names if a not in SPECIAL_ATTACKS]
    logits = target.predict_logits(x) if membership else None  # the pool's outputs, for membership attacks only
    regression = is_regression(target.graph)
    entry: dict[str, Any] = {"kind": target.kind, "source": target.source} | (
        _regression_scores(target, data)
        if regression
        else {
            "test_accuracy": _accuracy(target, data.x_test, data.y_test),
            "train_accuracy": _accuracy(target, data.x_train, data.y_train),
        }
    )
    entry["attacks"] = {}
    curves: dict[str, dict] = {"": {}, "_adaptive": {}}  # per ROC plot (its file name's suffix): attack -> curve
    for name in attack_names:
        if name == BACKDOOR:
            entry["attacks"][name] = backdoor_metrics(_classes(target), data.x_test, data.y_test, trigger)
            continue
        if name == BITFLIP:
            if target.name == "compiled":  # the ROMs are the design's: only the compiled model has them
                entry["attacks"][name] = _bitflip(context, data, log)
            continue
        entry["attacks"][name], curves[""][name] = _attack(name, logits, y, is_member, shadow_set, seed, regression)
        if context["replay"] is not None:
            built_like = shadow_set.replayed.get(context["replay"].stage_for(target.source), shadow_set)
            adaptive = entry.setdefault("adaptive_attacks", {})
            adaptive[name], curves["_adaptive"][name] = _attack(
                name, logits, y, is_member, built_like, seed, regression
            )
    attacked = f"; {summary(entry['attacks'])}" if entry["attacks"] else ""
    log(f"  {target.name}: {score_line(entry)}{attacked}")
    if "adaptive_attacks" in entry:
        log(f"  {target.name}, adaptive: {summary(entry['adaptive_attacks'])}")
    return entry, curves


def _attack(name: str, logits, y, is_member, shadow_set, seed, regression: bool = False) -> tuple[dict, tuple]:
    """One membership attack's metrics and ROC curve (a regression's: on each example's MSE)."""
    res = (attack_lib.REGRESSION_ATTACKS if regression else attack_lib.ATTACKS)[name](logits, y, shadow_set, seed)
    metrics = dict(attack_metrics(res.scores, is_member, res.decision), **(res.details or {}))
    fpr, tpr, _ = roc(res.scores, is_member)
    return metrics, (fpr, tpr, metrics["auc"])


def _bitflip(context: dict, data: Dataset, log) -> dict:
    """The bit-flip attack on the build's design: its ROMs hold the compiled target's graph."""
    try:
        return bitflip_attack(context["build"], data, context["bitflip"], log)
    except (BitflipError, BuildError) as e:
        raise AuditError(str(e)) from None


def summary(attacks: dict) -> str:
    """One line: each membership attack's AUC, the backdoor's success rate, the flips needed."""
    parts = [f"{a} AUC {m['auc']:.3f}" for a, m in attacks.items() if a not in SPECIAL_ATTACKS]
    if BITFLIP in attacks:
        flips = attacks[BITFLIP]["flips_to_target"]
        parts.append("bit flips to target " + ("not reached" if flips is None else str(flips)))
    if BACKDOOR in attacks:
        asr = attacks[BACKDOOR]["attack_success_rate"]
        parts.append("backdoor ASR " + ("n/a" if asr is None else f"{asr:.4f}"))
    return ", ".join(parts)


def _classes(target: Target):
    return lambda x: np.argmax(target.predict_logits(x), axis=1)


def _accuracy(target: Target, x, y) -> float:
    return round(float((_classes(target)(x) == y).mean()), 6)


def _regression_scores(target: Target, data: Dataset) -> dict:
    """A regression target's test/train MSE (and anomaly AUC with a_test) where a classifier's
    accuracies go; test_accuracy stays, None."""
    scores = regression_scores(target.predict_logits(data.x_test), data, target.predict_logits(data.x_train))
    return {"test_accuracy": None, "train_accuracy": None} | {k: _rounded(v) for k, v in scores.items()}


def _rounded(v: float | None) -> float | None:
    return None if v is None else round(v, 8)


def score_line(entry: dict) -> str:
    """A target's score for the log: its test accuracy, or a regression's test MSE."""
    if entry.get("test_accuracy") is None and "test_mse" in entry:
        return f"test MSE {entry['test_mse']:.6g}"
    return f"test accuracy {entry['test_accuracy']:.4f}"


def _write(out: Path, result: dict, curves: dict) -> list[str]:
    """audit.json, the ROC plots (audit_roc_<target>.png; adaptive curves in
    audit_roc_<target>_adaptive.png) and the report; returns the plots' names."""
    from compiler.outdir import record_files
    from compiler.report.report import write_report

    (out / "audit.json").write_text(json.dumps(result, indent=1))
    plots = []
    titles = {"": "", "_adaptive": " (adaptive shadows)"}
    for name, per_plot in curves.items():
        for suffix, chosen in per_plot.items():
            if chosen:  # a backdoor-only audit draws no ROC curve
                plot = f"audit_roc_{name}{suffix}.png"
                plot_roc(chosen, result["n_non_members"], f"membership inference: {name}{titles[suffix]}", out / plot)
                plots.append(plot)
    report = json.loads((out / "report.json").read_text())
    report["privacy"] = result
    write_report(report, out)
    record_files(out, ["audit.json", *plots, "report.json", "report.md"])
    return plots
