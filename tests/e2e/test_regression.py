"""A regression model (an autoencoder: its output is a vector, not classes) through the whole
flow: DATA.npz without y (reconstruct the input) and with anomaly labels a_test makes the task a
regression; the report gives MSE and the anomaly-detection AUC for the float and integer
models, the Verilog design matches the golden executor on every output, and the audit's
membership inference runs on each row's reconstruction error."""

import contextlib
import io
import json
import warnings

import numpy as np
import pytest

from compiler import api
from compiler.audit.options import AuditError
from compiler.cli import main
from compiler.data import anomaly_auc, row_errors
from compiler.exec import predict_logits
from compiler.exec.train import TrainConfig
from compiler.ir import Graph

NORMAL_DIGITS = 5  # digits 0-4 are "normal" (the autoencoder is trained on them); 5-9 anomalous
QUIET = {"log": lambda *_: None, "progress": False}


def digits_autoencoder(folder):
    """A 64 -> 16 -> 8 -> 16 -> 64 autoencoder (ReLU between) trained in torch on the normal
    digits (scaled to [0, 1]), exported with torch.onnx; DATA.npz has x_train (normal rows),
    x_test (every kind) and a_test (1 where a test row is an anomalous digit), and no y."""
    import torch
    import torch.nn as nn
    from sklearn.datasets import load_digits

    from compiler.exec.torch import fixed_threads

    d = load_digits()
    x, digit = (d.data / 16.0).astype(np.float32), d.target
    order = np.random.default_rng(0).permutation(len(x))
    x, digit = x[order], digit[order]
    normal = digit < NORMAL_DIGITS
    x_train = x[normal][:600]
    x_test = np.concatenate([x[normal][600:], x[~normal][:300]])
    a_test = np.concatenate([np.zeros(int(normal.sum()) - 600), np.ones(300)]).astype(np.int64)
    with fixed_threads():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 64)
        )
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        xt = torch.from_numpy(x_train)
        gen = torch.Generator().manual_seed(0)
        for _ in range(150):
            for idx in torch.randperm(len(xt), generator=gen).split(64):
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(xt[idx]), xt[idx]).backward()
                opt.step()
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path, data_path = folder / "autoencoder.onnx", folder / "data.npz"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (xt[:1],), str(onnx_path), dynamo=False, input_names=["x"], output_names=["y"])
    np.savez(data_path, x_train=x_train, x_test=x_test, a_test=a_test)
    return onnx_path, data_path


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    work = tmp_path_factory.mktemp("autoencoder")
    model, data = digits_autoencoder(work / "model")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["compile", str(model), "--data", str(data), "-o", str(work / "out"), "--no-synth"]) == 0
    return work / "out", data


def test_an_autoencoder_compiles_as_a_regression(build):
    out, data = build
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "regression"
    graph = Graph.load(out)
    assert graph.meta["task"] == "regression"
    f, c = report["float"], report["compiled"]
    assert f["test_accuracy"] is None and c["test_accuracy"] is None  # no classes
    assert c["onnx_matches_golden"]["identical"]
    # the integer model's reconstruction error is the float model's within 1% (relative)
    assert abs(c["test_mse"] - f["test_mse"]) <= 0.01 * f["test_mse"]
    assert abs(c["train_mse"] - f["train_mse"]) <= 0.01 * f["train_mse"]
    # anomalous digits reconstruct worse: the error separates them, for both models
    assert f["test_auc"] > 0.8 and abs(c["test_auc"] - f["test_auc"]) < 0.01
    # the report's figures are what the executors compute
    arrays = np.load(data)
    ref = row_errors(predict_logits(graph, arrays["x_test"]), arrays["x_test"])
    assert c["test_mse"] == pytest.approx(float(ref.mean()), rel=1e-9)
    assert c["test_auc"] == pytest.approx(anomaly_auc(ref, arrays["a_test"]), rel=1e-9)
    assert all("test_mse" in p for p in report["passes"])
    md = (out / "report.md").read_text()
    assert "| test MSE |" in md and "anomaly AUC" in md


@pytest.mark.slow
def test_the_design_matches_every_output_and_the_audit_uses_the_mse(build):
    out, _ = build
    sim = api.simulate(out, samples=4, log=QUIET["log"])
    assert sim["mismatches"] == 0 and sim["error"] is None  # all 64 outputs of every sample, bit for bit
    audit = api.audit(
        out, attacks="threshold,lira,label_only", shadows=4, shadow_training=TrainConfig(epochs=10), **QUIET
    )
    for target in audit["targets"].values():
        assert target["test_accuracy"] is None and target["test_mse"] > 0 and target["test_auc"] > 0.8
        assert set(target["attacks"]) == {"loss_threshold", "lira_offline", "lira_online"}
        # members (x_train, trained on) reconstruct better than non-members: the loss attack sees it
        assert target["attacks"]["loss_threshold"]["auc"] > 0.6
    skipped = ["confidence_threshold", "entropy_threshold", "modified_entropy_threshold", "label_only"]
    assert [note.split()[0] for note in audit["notes"]] == skipped
    assert "Note: label_only skipped" in (out / "report.md").read_text()


def test_the_attacks_a_regression_cannot_have_are_refused(build):
    out, _ = build
    with pytest.raises(AuditError, match="bitflip attack is defined on classes"):
        api.audit(out, attacks="bitflip", **QUIET)
    with pytest.raises(AuditError, match="none of the chosen attacks applies to a regression"):
        api.audit(out, attacks="label_only", **QUIET)


def test_compare_and_explore_read_the_mse(build):
    from compiler.explore.metrics import parse_objective
    from compiler.report.compare import load_build, table_cells

    out, _ = build
    report = json.loads((out / "report.json").read_text())
    row = load_build(out)
    assert (
        row["compiled_mse"] == report["compiled"]["test_mse"] and row["compiled_auc"] == report["compiled"]["test_auc"]
    )
    assert {"float MSE", "compiled MSE", "anomaly AUC"} <= set(table_cells([row])[0])
    mse, auc = parse_objective("mse"), parse_objective("anomaly_auc")
    assert (mse.key, mse.direction, auc.key, auc.direction) == (
        "compiled.test_mse",
        "min",
        "compiled.test_auc",
        "max",
    )
