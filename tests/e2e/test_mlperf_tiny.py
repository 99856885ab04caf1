"""Issue 27: the four MLPerf Tiny reference models (benchmarks/mlperf_models.py) as torch.onnx
writes them, TorchScript and dynamo. `mpc check` and `mpc compile` agree on every one; the two
smallest (DS-CNN, the FC autoencoder) compile at int8 with model.int.onnx identical to the
golden executor on every test row and simulate 16 samples with 0 mismatches. Training budgets
are the smallest that still learn ("test" in MODELS[...].budgets)."""

import numpy as np
import pytest

from benchmarks.mlperf_models import EXPORTERS, MODELS, build
from compiler import api
from compiler.check import check
from compiler.errors import MpcError

pytestmark = pytest.mark.slow
SIMULATED_SAMPLES = 16


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each model trained once for the module, exported both ways: key -> Built."""
    cache = {}

    def get(key):
        if key not in cache:
            cache[key] = build(key, tmp_path_factory.mktemp(key), EXPORTERS, budget="test")
        return cache[key]

    return get


def compile_int8(model, data, out):
    return api.compile(model, data, out, log=lambda *_: None, progress=False, synth_timeout=None)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("key", list(MODELS))
def test_check_and_compile_agree(key, exporter, trained, tmp_path):
    built = trained(key)
    model = built.model_paths[exporter]
    refused = [f"{v.name} ({v.op_type}): {v.detail}" for v in check(model) if v.status == "refused"]
    try:
        compile_int8(model, built.data_path, tmp_path / "out")
    except MpcError as e:
        assert refused, f"`mpc check` calls {model.name} supported, but `mpc compile` refuses it: {e}"
        return
    assert not refused, f"`mpc compile` builds {model.name}, but `mpc check` refuses: {refused}"


def compiled_and_simulated(built, exporter, out):
    """The int8 build of one export: model.int.onnx == golden on every test row, 16 samples
    simulated (Verilator) with 0 mismatches. Returns the report."""
    report = compile_int8(built.model_paths[exporter], built.data_path, out)
    with np.load(built.data_path) as npz:
        n_test = len(npz["x_test"])
    check = report["compiled"]["onnx_matches_golden"]
    assert check["identical"] and check["checked_samples"] == n_test, check
    sim = api.simulate(out, samples=SIMULATED_SAMPLES, simulator="verilator", log=lambda *_: None)
    assert sim["samples"] == SIMULATED_SAMPLES
    assert sim["mismatches"] == 0, sim.get("first_mismatches")
    return report


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_ds_cnn_int8_is_bit_exact_and_close_to_float(exporter, trained, tmp_path):
    built = trained("kws")
    report = compiled_and_simulated(built, exporter, tmp_path / "out")
    float_acc, int_acc = report["float"]["test_accuracy"], report["compiled"]["test_accuracy"]
    assert float_acc == pytest.approx(built.float_metrics["accuracy"], abs=1 / 64)  # the export is the model
    assert abs(int_acc - float_acc) <= 3 / 64, (float_acc, int_acc)  # 64 test rows: at most 3 change class


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_autoencoder_int8_is_bit_exact_and_reconstructs_like_float(exporter, trained, tmp_path):
    from compiler.exec import predict_logits
    from compiler.ir import Graph

    built = trained("ad")
    out = tmp_path / "out"
    compiled_and_simulated(built, exporter, out)
    with np.load(built.data_path) as npz:
        assert "y_train" not in npz.files and "a_test" in npz.files  # "reconstruct the input"
        x = npz["x_test"]
    mse = {}
    for name, graph in (("float", Graph.load(out / "checkpoints" / "00-import")), ("int", Graph.load(out))):
        mse[name] = float(((predict_logits(graph, x) - x) ** 2).mean())
    assert mse["float"] == pytest.approx(built.float_metrics["mse"], rel=1e-4)
    assert abs(mse["int"] - mse["float"]) <= 0.01 * mse["float"], mse  # issue 27: within 1% relative MSE
