"""The backdoor audit: ASR from the compiled model's exact outputs (checked against
model.int.onnx in onnxruntime), trigger-file errors on one line, report and compare sections."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from compiler import api
from compiler.audit.backdoor import TriggerError, load_trigger
from compiler.cli import main
from compiler.report.compare import load_build
from tests.compiler.audit.conftest import QUIET


def _trigger(path, data_path, target=3, **overrides):
    """Half of the image replaced by a training image of `target`: a trigger strong enough to
    flip many predictions, weak enough not to flip all of them."""
    data = np.load(data_path)
    mask = np.zeros((8, 8), np.float32)
    mask[:, 4:] = 1
    pattern = data["x_train"][np.flatnonzero(data["y_train"] == target)[0]] * mask
    arrays = {"mask": mask, "pattern": pattern, "target": np.int64(target)} | overrides
    np.savez(path, **arrays)
    return path


def test_compiled_asr_equals_onnxruntime_on_the_triggered_test_set(build_copy, tmp_path):
    out, data_path = build_copy
    for plot in out.glob("audit_roc_*.png"):  # an earlier audit of the shared build drew some
        plot.unlink()
    trigger = _trigger(tmp_path / "t.npz", data_path)
    result = api.audit(out, attacks="backdoor", trigger=trigger, **QUIET)
    compiled = result["targets"]["compiled"]["attacks"]["backdoor"]

    data, t = np.load(data_path), np.load(trigger)
    victims = data["y_test"] != 3
    x = data["x_test"][victims] * (1 - t["mask"]) + t["pattern"] * t["mask"]
    session = ort.InferenceSession(str(out / "model.int.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {session.get_inputs()[0].name: x.astype(np.float32)})[0]
    assert compiled["attack_success_rate"] == round(float((logits.argmax(1) == 3).mean()), 6)
    assert 0.05 < compiled["attack_success_rate"] < 1  # the measure is not trivially 0 or 1
    assert compiled["samples"] == int(victims.sum()) and compiled["target_class"] == 3
    assert compiled["clean_accuracy"] == result["targets"]["compiled"]["test_accuracy"]

    on_disk = json.loads((out / "audit.json").read_text())
    assert on_disk["settings"]["backdoor"]["target_class"] == 3
    assert on_disk["shadows"] == 0 and not (out / "audit_roc_compiled.png").exists()
    assert "## Backdoor" in (out / "report.md").read_text()
    assert "## Membership inference" not in (out / "report.md").read_text()
    row = load_build(out)
    assert row["backdoor_asr"] == compiled["attack_success_rate"] and "attack" not in row


def test_backdoor_next_to_membership_attacks(build_copy, tmp_path):
    out, data_path = build_copy
    trigger = _trigger(tmp_path / "t.npz", data_path)
    result = api.audit(out, attacks="loss_threshold,backdoor", trigger=trigger, **QUIET)
    assert list(result["targets"]["original"]["attacks"]) == ["loss_threshold", "backdoor"]
    report = (out / "report.md").read_text()
    assert "## Membership inference" in report and "## Backdoor" in report
    row = load_build(out)
    assert row["attack"] == "loss_threshold" and row["original_backdoor_asr"] is not None


def test_nhwc_trigger_and_unit_axes_are_accepted(tmp_path):
    mask = np.zeros((4, 5, 3), np.float32)
    np.savez(tmp_path / "t.npz", mask=mask, pattern=mask, target=1)
    trigger = load_trigger(tmp_path / "t.npz", (3, 4, 5), 10, layout="nhwc")
    assert trigger.mask.shape == (3, 4, 5)
    np.savez(tmp_path / "u.npz", mask=np.zeros((8, 8)), pattern=np.zeros((1, 8, 8)), target=np.array([2]))
    assert load_trigger(tmp_path / "u.npz", (1, 8, 8), 10).target == 2


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"mask": np.zeros((8, 8)), "target": 1}, "missing pattern"),
        ({"mask": np.zeros((7, 8)), "pattern": np.zeros((8, 8)), "target": 1}, "mask has shape (7, 8)"),
        ({"mask": np.zeros((8, 8)), "pattern": np.zeros((8, 8)), "target": 10}, "target 10 is not a class"),
        ({"mask": np.zeros((8, 8)), "pattern": np.zeros((8, 8)), "target": 1.5}, "target 1.5 is not a class"),
        ({"mask": np.full((8, 8), 2.0), "pattern": np.zeros((8, 8)), "target": 1}, "need values in [0, 1]"),
        ({"mask": np.zeros((8, 8)), "pattern": np.full((8, 8), np.nan), "target": 1}, "pattern contains NaN"),
        ({"mask": np.zeros((8, 8)), "pattern": np.zeros((8, 8)), "target": [1, 2]}, "one class number"),
    ],
)
def test_bad_trigger_files_are_named_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(TriggerError) as e:
        load_trigger(tmp_path / "bad.npz", (8, 8), 10)
    assert message in str(e.value) and str(tmp_path / "bad.npz") in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--attacks", "backdoor"], "needs --trigger"),
        (["--attacks", "threshold", "--trigger", "t.npz"], "add backdoor to --attacks"),
        (["--attacks", "backdoor", "--trigger", "/nonexistent.npz"], "no such trigger file"),
    ],
)
def test_cli_trigger_errors_are_one_line(overfit_build, capsys, argv, message):
    out, _ = overfit_build
    assert main(["audit", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("mpc audit: error:")


def test_cli_prints_the_success_rate(build_copy, tmp_path, capsys):
    out, data_path = build_copy
    trigger = _trigger(tmp_path / "t.npz", data_path)
    assert main(["audit", str(out), "--attacks", "backdoor", "--trigger", str(trigger), "--quiet"]) == 0
    assert "compiled: test accuracy" in capsys.readouterr().out
