"""A one-output sigmoid model is a binary classifier (class = output >= 0.5, labels 0/1) through
accuracy, model.int.onnx, simulation and the audit."""

import numpy as np
import pytest

from benchmarks.exporter_corpus import class_agreement, torch_sigmoid_head
from compiler import api
from compiler.ir import Graph, binary_output
from kernels.argmax import binary_classes, threshold_code

QUIET = {"log": lambda *_: None, "progress": False}


def test_the_threshold_is_exact_at_the_boundary():
    assert threshold_code(0.5, 7) == 64 and threshold_code(0.0, 5) == 0 and threshold_code(0.5, 0) == 1
    out = np.array([[63], [64], [65], [-3]])
    assert list(binary_classes(out, 0.5, 7)) == [0, 1, 1, 0]
    assert list(binary_classes(out, 0.0, 7)) == [1, 1, 1, 0]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    work = tmp_path_factory.mktemp("binary")
    model, data = torch_sigmoid_head(work / "model")
    report = api.compile(model, data, work / "out", synth_timeout=None, **QUIET)
    return work / "out", data, report


def test_a_sigmoid_head_compiles_as_a_binary_classifier(build):
    out, data, report = build
    compiled = Graph.load(out)
    assert binary_output(compiled) == "probability" and compiled.meta["binary_output"] == "probability"
    assert report["compiled"]["onnx_matches_golden"]["identical"]  # classes included: the threshold in ONNX
    assert report["float"]["test_accuracy"] > 0.95 and report["compiled"]["test_accuracy"] > 0.95
    assert class_agreement(out, data) >= 0.98


@pytest.mark.slow
def test_it_simulates_and_audits(build):
    out, data, _ = build
    assert api.simulate(out, samples=8, **{"log": QUIET["log"]})["mismatches"] == 0
    audit = api.audit(out, attacks=["threshold"], **QUIET)
    for target in audit["targets"].values():
        assert all(0.0 <= a["auc"] <= 1.0 for a in target["attacks"].values())
