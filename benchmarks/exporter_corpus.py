"""A corpus of small models shaped the way real exporters write them, made here from nothing.

Each entry trains a small torch model briefly on scikit-learn's digits (or writes an ONNX graph
with onnx.helper the way tf2onnx or a QONNX export does, with weights from such a model) and
returns (MODEL.onnx, DATA.npz) ready for `mpc compile`. Used by tests/e2e/test_exporter_corpus.py and
benchmarks/frontend_coverage.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.mlperf_models import torch_onnx_export


@dataclass(frozen=True)
class Entry:
    name: str
    family: str  # torch, torch-dynamo, tf2onnx, qonnx, wide
    build: Callable[[Path], tuple[Path, Path]]


def digits(features: str = "flat", classes: int = 10, seed: int = 0) -> dict:
    """sklearn digits split 1,000 / 797: x scaled to [0, 1]; `features` "flat" [64], "image"
    [1, 8, 8], "nhwc" [8, 8, 1], "rows" [8, 8] (8 channels of length 8), "small" [16] (4x4 means)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    keep = y < classes
    x, y = x[keep], y[keep]
    if features == "image":
        x = x.reshape(-1, 1, 8, 8)
    elif features == "nhwc":
        x = x.reshape(-1, 8, 8, 1)
    elif features == "rows":
        x = x.reshape(-1, 8, 8)
    elif features == "small":
        x = x.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
    order = np.random.default_rng(seed).permutation(len(x))
    n_train = int(0.56 * len(x))
    train, test = order[:n_train], order[n_train:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def train(model, data: dict, epochs: int = 40, binary: bool = False, seed: int = 0):
    """Adam on cross-entropy (binary: on a single sigmoid output), minibatches of 64; one torch
    thread, so the corpus is the same on every machine."""
    from compiler.exec.torch import fixed_threads

    with fixed_threads():
        return _train(model, data, epochs, binary, seed)


def _train(model, data: dict, epochs: int, binary: bool, seed: int):
    import torch

    torch.manual_seed(seed)
    for module in model.modules():  # initial weights from the seed, whatever ran before in the process
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    x = torch.from_numpy(data["x_train"])
    y = torch.from_numpy(data["y_train"])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            out = model(x[idx])
            if binary:
                loss = torch.nn.functional.binary_cross_entropy(out[:, 0], y[idx].float())
            else:
                loss = torch.nn.functional.cross_entropy(out, y[idx])
            loss.backward()
            opt.step()
    return model.eval()


def export(model, data: dict, folder: Path, name: str, dynamo: bool = False) -> tuple[Path, Path]:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    example = (torch.from_numpy(data["x_train"][:1]),)
    torch_onnx_export(model, example, path, dynamo)
    data_path = folder / f"{name}.npz"
    np.savez(data_path, **data)
    return path, data_path


def class_agreement(out: Path, data_path: Path) -> float:
    """Share of test samples where the build's integer classes equal its original float model's,
    on the test data as `mpc compile` reads it (layouts fitted to the model's input)."""
    from compiler.data import load_data
    from compiler.exec import predict_classes
    from compiler.ir import Graph

    original, compiled = Graph.load(out / "checkpoints" / "00-import"), Graph.load(out)
    n_classes = max(2, int(np.prod(original.outputs[0].shape)))
    x = load_data(data_path, original.inputs[0].shape, n_classes).x_test
    return float(np.mean(predict_classes(compiled, x) == predict_classes(original, x)))


# ---- torch exports ------------------------------------------------------------------------------
def _mlp(*layers):
    import torch

    return torch.nn.Sequential(*layers)


def torch_bn1d(folder: Path, dynamo: bool = False) -> tuple[Path, Path]:
    import torch.nn as nn

    data = digits()
    torch_model = train(_mlp(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)), data)
    return export(torch_model, data, folder, "bn1d" + ("_dynamo" if dynamo else ""), dynamo)


def torch_sigmoid_head(folder: Path) -> tuple[Path, Path]:
    """A one-output binary classifier (digit 0 or 1): class = sigmoid output >= 0.5."""
    import torch.nn as nn

    data = digits(classes=2)
    torch_model = train(_mlp(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid()), data, binary=True)
    return export(torch_model, data, folder, "sigmoid_head")


def _activation_mlp(name: str, activation, folder: Path) -> tuple[Path, Path]:
    import torch.nn as nn

    data = digits()
    torch_model = train(_mlp(nn.Linear(64, 32), activation, nn.Linear(32, 10)), data)
    return export(torch_model, data, folder, name)


def torch_tanh(folder: Path) -> tuple[Path, Path]:
    import torch.nn as nn

    return _activation_mlp("tanh", nn.Tanh(), folder)


def torch_leaky_relu(folder: Path) -> tuple[Path, Path]:
    import torch.nn as nn

    return _activation_mlp("leaky_relu", nn.LeakyReLU(0.1), folder)


def torch_hardswish(folder: Path) -> tuple[Path, Path]:
    import torch.nn as nn

    return _activation_mlp("hardswish", nn.Hardswish(), folder)


def torch_conv1d(folder: Path, dynamo: bool = False) -> tuple[Path, Path]:
    """Digits as 8 channels of length 8: Conv1d, ReLU, MaxPool1d, Flatten, Linear."""
    import torch.nn as nn

    data = digits("rows")
    torch_model = train(
        _mlp(nn.Conv1d(8, 12, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(48, 10)), data
    )
    return export(torch_model, data, folder, "conv1d" + ("_dynamo" if dynamo else ""), dynamo)


def wide_mlp(folder: Path) -> tuple[Path, Path]:
    """A 6-layer MatMul+Add MLP, 16-64-64-64-64-64-5: its accumulators pass 32 bits."""
    import torch.nn as nn

    data = digits("small", classes=5)
    layers: list = [nn.Linear(16, 64), nn.ReLU()]
    for _ in range(4):
        layers += [nn.Linear(64, 64), nn.ReLU()]
    torch_model = train(_mlp(*layers, nn.Linear(64, 5)), data)
    return export(torch_model, data, folder, "wide_mlp", dynamo=True)


# ---- tf2onnx-shaped NHWC graphs --------------------------------------------------------------------
def _init(name: str, value) -> object:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value), name)


def tf2onnx_cnn_model(w: dict, epsilon: float):
    """The graph tf2onnx writes at opset 9 for a Keras NHWC CNN (conv 3x3 pad 1, relu, maxpool 2,
    flatten, dense, 1-D BatchNorm, relu, dense) on an 8x8 image, from its weights `w` (cw, cb, w1,
    b1, g, be, mu, var, w2, b2; conv in ONNX's [C_out, C_in, 3, 3], dense as MatMul [in, out])."""
    from onnx import TensorProto, helper

    c_in, (flat, hidden), classes = w["cw"].shape[1], w["w1"].shape, w["w2"].shape[1]
    nodes = [
        helper.make_node("Transpose", ["input_1"], ["t0"], perm=[0, 3, 1, 2], name="conv/T_in"),
        helper.make_node("Conv", ["t0", "cw", "cb"], ["c0"], pads=[1, 1, 1, 1], kernel_shape=[3, 3], name="conv"),
        helper.make_node("Transpose", ["c0"], ["t1"], perm=[0, 2, 3, 1], name="conv/T_out"),
        helper.make_node("Relu", ["t1"], ["r1"], name="relu"),
        helper.make_node("Transpose", ["r1"], ["t2"], perm=[0, 3, 1, 2], name="pool/T_in"),
        helper.make_node("MaxPool", ["t2"], ["p0"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Transpose", ["p0"], ["t3"], perm=[0, 2, 3, 1], name="pool/T_out"),
        helper.make_node("Reshape", ["t3", "flat_shape"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "w1"], ["m1"], name="dense"),
        helper.make_node("Add", ["m1", "b1"], ["a1"], name="dense/bias"),
        helper.make_node("Unsqueeze", ["a1"], ["u"], axes=[1, 2], name="bn/unsqueeze"),
        helper.make_node("Transpose", ["u"], ["tb"], perm=[0, 3, 1, 2], name="bn/T_in"),
        helper.make_node("BatchNormalization", ["tb", "g", "be", "mu", "var"], ["bn"], epsilon=epsilon, name="bn"),
        helper.make_node("Transpose", ["bn"], ["ta"], perm=[0, 2, 3, 1], name="bn/T_out"),
        helper.make_node("Squeeze", ["ta"], ["s"], axes=[1, 2], name="bn/squeeze"),
        helper.make_node("Relu", ["s"], ["r2"], name="relu2"),
        helper.make_node("MatMul", ["r2", "w2"], ["m2"], name="out"),
        helper.make_node("Add", ["m2", "b2"], ["logits"], name="out/bias"),
    ]
    inits = [_init(k, np.asarray(v, np.float32)) for k, v in w.items()] + [_init("flat_shape", np.array([-1, flat]))]
    graph = helper.make_graph(
        nodes,
        "tf2onnx",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__0", 8, 8, c_in])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["unk__0", classes])],
        inits,
    )
    assert hidden == w["w2"].shape[0]
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], producer_name="tf2onnx")
    model.ir_version = 4
    return model


def tf2onnx_cnn(folder: Path) -> tuple[Path, Path]:
    """A Keras-style CNN as tf2onnx writes it at opset 9, with weights trained in torch: NHWC input,
    Transposes around Conv and MaxPool, a Transpose back to NHWC before the flattening Reshape, and
    a 1-D BatchNormalization after the dense layer between Unsqueeze + Transpose and Transpose +
    Squeeze. Same function as the torch model (the dense weight's rows follow the NHWC flatten)."""
    import onnx
    import torch.nn as nn

    data = digits("image")
    c = 4
    net = train(
        _mlp(
            nn.Conv2d(1, c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * 4 * c, 16),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Linear(16, 10),
        ),
        data,
    )
    conv, dense, bn, out = net[0], net[4], net[5], net[7]

    def t(x):
        return x.detach().numpy().astype(np.float32)

    # the dense weight's rows follow the NHWC flatten: row (y*4 + x)*C + c is torch's column c*16 + y*4 + x
    w1 = t(dense.weight).reshape(16, c, 4, 4).transpose(2, 3, 1, 0).reshape(4 * 4 * c, 16)
    weights = {
        "cw": t(conv.weight),
        "cb": t(conv.bias),
        "w1": w1,
        "b1": t(dense.bias),
        "g": t(bn.weight),
        "be": t(bn.bias),
        "mu": t(bn.running_mean),
        "var": t(bn.running_var),
        "w2": t(out.weight).T.copy(),
        "b2": t(out.bias),
    }
    model = tf2onnx_cnn_model(weights, bn.eps)
    folder.mkdir(parents=True, exist_ok=True)
    path, data_path = folder / "tf2onnx_cnn.onnx", folder / "tf2onnx_cnn.npz"
    onnx.save(model, path)
    nhwc = {k: (v.transpose(0, 2, 3, 1) if k.startswith("x") else v) for k, v in data.items()}
    np.savez(data_path, **nhwc)
    return path, data_path


# ---- QONNX graphs (Brevitas-style Quant nodes) ---------------------------------------------------
QONNX_DOMAIN = "qonnx.custom_op.general"


def _qonnx_mlp(folder: Path, name: str, weight_quant) -> tuple[Path, Path]:
    """x -> Quant(8 bits, 2**-4) -> Gemm(quantized W1) -> Relu -> Quant(8 bits, 2**-3) -> Gemm(quantized
    W2), weights trained in torch; `weight_quant(name, tensor, w)` returns (node, initializers)."""
    import onnx
    import torch.nn as nn
    from onnx import TensorProto, helper

    data = digits()
    net = train(_mlp(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), data)
    w1, b1 = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
    w2, b2 = net[2].weight.detach().numpy(), net[2].bias.detach().numpy()
    nodes, inits = [], [_init("w1", w1), _init("b1", b1), _init("w2", w2), _init("b2", b2)]
    for node, more in (
        qonnx_quant("q_in", "x", 2.0**-4, 8),
        weight_quant("q_w1", "w1", w1),
        weight_quant("q_w2", "w2", w2),
    ):
        nodes.append(node)
        inits += more
    nodes.append(helper.make_node("Gemm", ["q_in.out", "q_w1.out", "b1"], ["h"], name="fc1", transB=1))
    nodes.append(helper.make_node("Relu", ["h"], ["h_relu"], name="relu1"))
    q_act, more = qonnx_quant("q_act", "h_relu", 2.0**-3, 8)
    nodes.append(q_act)
    inits += more
    nodes.append(helper.make_node("Gemm", ["q_act.out", "q_w2.out", "b2"], ["y"], name="fc2", transB=1))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    folder.mkdir(parents=True, exist_ok=True)
    path, data_path = folder / f"{name}.onnx", folder / f"{name}.npz"
    onnx.save(model, path)
    np.savez(data_path, **data)
    return path, data_path


def qonnx_quant(name: str, x: str, scale: float, bits: int, signed: int = 1, narrow: int = 0, zp: float = 0.0):
    """A QONNX `Quant` node reading `x` (output `<name>.out`) and its scale, zero point and
    bit-width initializers."""
    from onnx import helper

    inits = [
        _init(f"{name}.scale", np.float32(scale)),
        _init(f"{name}.zp", np.float32(zp)),
        _init(f"{name}.bits", np.float32(bits)),
    ]
    node = helper.make_node(
        "Quant",
        [x, f"{name}.scale", f"{name}.zp", f"{name}.bits"],
        [f"{name}.out"],
        name=name,
        domain=QONNX_DOMAIN,
        signed=signed,
        narrow=narrow,
        rounding_mode="ROUND",
    )
    return node, inits


def _pow2_scale(w: np.ndarray, levels: int) -> float:
    """The smallest power-of-two scale whose grid of +-levels steps covers max|w|."""
    return float(2.0 ** np.ceil(np.log2(np.abs(w).max() / levels)))


def qonnx_4bit(folder: Path) -> tuple[Path, Path]:
    return _qonnx_mlp(folder, "qonnx_4bit", lambda n, t, w: qonnx_quant(n, t, _pow2_scale(w, 7), 4, narrow=1))


def qonnx_bipolar(folder: Path) -> tuple[Path, Path]:
    from onnx import helper

    def bipolar(name, tensor, w):
        scale = float(2.0 ** np.round(np.log2(np.abs(w).mean())))
        node = helper.make_node(
            "BipolarQuant", [tensor, f"{name}.scale"], [f"{name}.out"], name=name, domain=QONNX_DOMAIN
        )
        return node, [_init(f"{name}.scale", np.float32(scale))]

    return _qonnx_mlp(folder, "qonnx_bipolar", bipolar)


CORPUS: list[Entry] = [
    Entry("torch BatchNorm1d", "torch", torch_bn1d),
    Entry("torch BatchNorm1d (dynamo)", "torch-dynamo", lambda f: torch_bn1d(f, dynamo=True)),
    Entry("torch sigmoid head", "torch", torch_sigmoid_head),
    Entry("torch tanh", "torch", torch_tanh),
    Entry("torch leaky relu", "torch", torch_leaky_relu),
    Entry("torch hardswish", "torch", torch_hardswish),
    Entry("torch Conv1d", "torch", torch_conv1d),
    Entry("torch Conv1d (dynamo)", "torch-dynamo", lambda f: torch_conv1d(f, dynamo=True)),
    Entry("tf2onnx NHWC CNN, opset 9, 1-D BatchNorm", "tf2onnx", tf2onnx_cnn),
    Entry("QONNX 4-bit weights, 8-bit activations", "qonnx", qonnx_4bit),
    Entry("QONNX bipolar weights", "qonnx", qonnx_bipolar),
    Entry("6-layer 64-wide MLP", "wide", wide_mlp),
]
