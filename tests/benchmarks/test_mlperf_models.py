"""benchmarks/mlperf_models.py: the four MLPerf Tiny reference models have the reference's
parameter counts and output shapes, and their data is in mpc's DATA.npz format."""

import numpy as np
import pytest
import torch

from benchmarks.mlperf_models import (
    MODELS,
    REFERENCE_PARAMS,
    auc,
    check_param_counts,
    count_params,
    export,
    write_data,
)

OUTPUTS = {"kws": 12, "ic": 10, "vww": 2, "ad": 640}
INPUTS = {"kws": (1, 49, 10), "ic": (3, 32, 32), "vww": (3, 96, 96), "ad": (640,)}


def test_parameter_counts_are_the_references_and_round_to_the_issues_figures():
    rows = check_param_counts()
    assert [r[0] for r in rows] == list(MODELS)
    for key, counted, reference, quoted in rows:
        assert counted == reference == REFERENCE_PARAMS[key]
        assert abs(counted - quoted) <= 0.005 * quoted, key  # "23.8k", "78k", "214k", "268k"


@pytest.mark.parametrize("key", list(MODELS))
def test_models_take_the_reference_input_and_data_has_its_shape(key):
    spec = MODELS[key]
    data = spec.data(6, 4, 0)
    assert data["x_train"].shape == (6, *INPUTS[key]) and data["x_test"].shape == (4, *INPUTS[key])
    assert data["x_train"].dtype == np.float32
    model = spec.make().eval()
    with torch.no_grad():
        assert tuple(model(torch.from_numpy(data["x_test"])).shape) == (4, OUTPUTS[key])
    if spec.task == "regression":
        assert "y_train" not in data and set(np.unique(data["a_test"])) <= {0, 1}
    else:
        assert data["y_train"].dtype == np.int64 and data["y_test"].max() < OUTPUTS[key]


def test_ds_cnn_has_four_depthwise_convolutions_and_the_25_by_5_pool():
    model = MODELS["kws"].make()
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 64]
    pools = [m for m in model.modules() if isinstance(m, torch.nn.AvgPool2d)]
    assert len(depthwise) == 4 and all(m.kernel_size == (3, 3) for m in depthwise)
    assert [p.kernel_size for p in pools] == [(25, 5)]


def test_autoencoder_data_is_written_without_labels(tmp_path):
    data = MODELS["ad"].data(8, 6, 0)
    path = write_data(data, tmp_path / "ad.npz")
    with np.load(path) as npz:
        assert sorted(npz.files) == ["a_test", "x_test", "x_train"]
        assert npz["a_test"].sum() == 3  # half the test rows are anomalous


def test_auc_by_ranks():
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([0, 1, 0, 1])) == 0.5


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_export_writes_an_onnx_model_with_a_dynamic_batch(exporter, tmp_path):
    import onnx

    model = MODELS["kws"].make().eval()
    assert count_params(model) == REFERENCE_PARAMS["kws"]
    path = export(model, tmp_path / "kws.onnx", np.zeros((2, 1, 49, 10), np.float32), exporter)
    graph = onnx.load(path).graph
    assert [i.name for i in graph.input] == ["x"] and [o.name for o in graph.output] == ["y"]
    assert not graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")  # batch is symbolic
