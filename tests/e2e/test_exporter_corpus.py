"""Issue 13's corpus: models shaped as exporters write them compile as given, model.int.onnx is
identical to the golden executor, the 8-bit build agrees with the float model's class on >= 98% of
the test data, and one model of each family simulates with 0 mismatches."""

import pytest

from benchmarks.exporter_corpus import CORPUS, class_agreement
from compiler import api

pytestmark = pytest.mark.slow
SIMULATED = {}  # family -> the first entry of it, simulated
for entry in CORPUS:
    SIMULATED.setdefault(entry.family, entry.name)


@pytest.mark.parametrize("entry", CORPUS, ids=[e.name for e in CORPUS])
def test_compiles_as_given_bit_exact_and_agrees_with_float(entry, tmp_path):
    model, data = entry.build(tmp_path / "model")
    out = tmp_path / "out"
    report = api.compile(model, data, out, log=lambda *_: None, progress=False, synth_timeout=None)
    assert report["compiled"]["onnx_matches_golden"]["identical"]
    agreement = class_agreement(out, data)
    assert agreement >= 0.98, f"{entry.name}: integer and float classes agree on {agreement:.1%}"
    if SIMULATED[entry.family] == entry.name:
        sim = api.simulate(out, samples=8, log=lambda *_: None)
        assert sim["mismatches"] == 0


def test_an_nhwc_model_is_audited_with_data_in_its_own_layout(tmp_path):
    from benchmarks.exporter_corpus import tf2onnx_cnn

    model, data = tf2onnx_cnn(tmp_path / "model")
    out = tmp_path / "out"
    api.compile(model, data, out, log=lambda *_: None, progress=False, synth_timeout=None)
    audit = api.audit(out, attacks=["threshold"], log=lambda *_: None, progress=False)
    assert {"original", "compiled"} <= set(audit["targets"])
    for target in audit["targets"].values():
        assert target["test_accuracy"] > 0.8
