"""End to end on an overfit, compiled MLP (conftest.py): leakage found, compiled scores from the
exact integer outputs, outputs written, reproducible, CLI errors on one line."""

import json

import numpy as np
import onnxruntime as ort
import pytest
from scipy.special import log_softmax
from sklearn.metrics import roc_auc_score

from compiler import api
from compiler.audit import ATTACK_NAMES
from compiler.cli import main
from tests.compiler.audit.conftest import MEMBERS, QUIET, SHADOW_TRAINING

METRICS = {
    "auc",
    "balanced_accuracy",
    "tpr_at_1pct_fpr",
    "tpr_at_0_1pct_fpr",
    "member_precision",
    "member_recall",
    "member_f1",
}


def test_audit_detects_leakage_of_the_overfit_original(overfit_audit):
    original = overfit_audit["targets"]["original"]
    assert original["train_accuracy"] == 1.0 and original["test_accuracy"] < 0.95
    assert original["attacks"]["loss_threshold"]["auc"] >= 0.6


def test_compiled_scores_come_from_the_integer_model(overfit_build, overfit_audit):
    """Recompute the loss-threshold AUC from model.int.onnx in onnxruntime, with the attack's
    shadow-calibrated class thresholds: it must agree with the audit's compiled AUC."""
    out, data_path = overfit_build
    data = np.load(data_path)
    x = np.concatenate([data["x_train"], data["x_test"]])  # equal splits: nothing subsampled
    y = np.concatenate([data["y_train"], data["y_test"]])
    is_member = np.arange(len(x)) < len(data["x_train"])
    session = ort.InferenceSession(str(out / "model.int.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {session.get_inputs()[0].name: x})[0].astype(np.float64)
    loss = -log_softmax(logits, axis=1)[np.arange(len(y)), y]
    attack = overfit_audit["targets"]["compiled"]["attacks"]["loss_threshold"]
    thresholds = np.array(attack["class_thresholds"])
    independent_auc = roc_auc_score(is_member, -loss - thresholds[y])
    assert attack["auc"] == pytest.approx(independent_auc, abs=0.02)
    assert overfit_audit["targets"]["compiled"]["kind"] == "integer"


def test_audit_json_schema(overfit_build, overfit_audit):
    out, _ = overfit_build
    on_disk = json.loads((out / "audit.json").read_text())
    assert on_disk == json.loads(json.dumps(overfit_audit))
    assert on_disk["n_members"] == on_disk["n_non_members"] == MEMBERS
    assert on_disk["shadows"] == 4 and on_disk["seed"] == 0
    assert on_disk["settings"]["attacks"] == [
        "loss_threshold",
        "confidence_threshold",
        "entropy_threshold",
        "modified_entropy_threshold",
        "label_only",
    ]
    assert set(on_disk["targets"]) == {"original", "compiled"}
    for target in on_disk["targets"].values():
        assert {"test_accuracy", "train_accuracy", "kind", "source", "attacks"} <= set(target)
        for metrics in target["attacks"].values():
            assert METRICS <= set(metrics)
            assert metrics["tpr_at_0_1pct_fpr"] is None and "not resolvable" in metrics["note"]
            assert 0 <= metrics["tpr_at_1pct_fpr"] <= 1
            assert "calibrated" in metrics
    assert (out / "audit_roc_original.png").stat().st_size > 0
    assert (out / "audit_roc_compiled.png").stat().st_size > 0


def test_same_seed_same_numbers(overfit_build, overfit_audit):
    out, _ = overfit_build
    again = api.audit(
        out, attacks="threshold,label_only", shadows=4, seed=0, shadow_training=SHADOW_TRAINING, write=False, **QUIET
    )
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}
    assert json.dumps(strip(again), sort_keys=True) == json.dumps(strip(overfit_audit), sort_keys=True)


def test_report_section_is_refreshed_not_duplicated(build_copy):
    out, _ = build_copy
    for attacks in ("label_only", "label_only"):
        api.audit(out, attacks=attacks, **QUIET)
    report = (out / "report.md").read_text()
    assert report.count("## Membership inference") == 1
    assert "| compiled |" in report and "label_only" in report
    assert json.loads((out / "report.json").read_text())["privacy"]["settings"]["attacks"] == ["label_only"]


def test_intermediate_checkpoint_as_target(build_copy):
    out, _ = build_copy
    result = api.audit(out, attacks="label_only", targets="01-canonicalize,compiled", **QUIET)
    assert result["targets"]["01-canonicalize"]["kind"] == "float"
    assert result["shadows"] == 0  # label-only needs no shadows


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--attacks", "nope"], "unknown attack 'nope'"),
        (["--targets", "99-missing"], "unknown target '99-missing'"),
        (["--shadows", "1"], "--shadows must be at least 2"),
        (["--data", "/nonexistent.npz"], "no such file"),
    ],
)
def test_cli_errors_are_one_line(overfit_build, capsys, argv, message):
    out, _ = overfit_build
    assert main(["audit", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("mpc audit: error:")


def test_cli_audit_of_something_that_is_not_a_build(tmp_path, capsys):
    assert main(["audit", str(tmp_path)]) == 2
    assert "not a complete mpc build" in capsys.readouterr().err


@pytest.mark.slow
def test_all_attacks_with_16_shadows(build_copy):
    out, _ = build_copy
    result = api.audit(out, attacks="all", shadows=16, shadow_training=SHADOW_TRAINING, **QUIET)
    for target in result["targets"].values():
        assert list(target["attacks"]) == list(ATTACK_NAMES)
        lira, loss = target["attacks"]["lira_online"], target["attacks"]["loss_threshold"]
        assert lira["auc"] >= max(0.7, loss["auc"])  # per-example calibration pays off
        assert lira["tpr_at_1pct_fpr"] >= loss["tpr_at_1pct_fpr"]
    assert result["shadow_models"]["count"] == 16 and result["shadow_models"]["mean_train_accuracy"] == 1.0


@pytest.mark.slow
def test_compile_with_audit_flag(overfit_build, tmp_path, capsys):
    _, data_path = overfit_build
    model = data_path.with_suffix(".onnx")
    argv = ["compile", str(model), "--data", str(data_path), "-o", str(tmp_path / "b"), "--audit", "--no-synth"]
    assert main([*argv, "--quiet"]) == 0
    audit = json.loads((tmp_path / "b" / "audit.json").read_text())
    assert audit["settings"]["attacks"] == list(ATTACK_NAMES) and audit["shadows"] == 16
    assert "## Membership inference" in (tmp_path / "b" / "report.md").read_text()
