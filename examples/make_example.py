"""Make the bundled example: an MLP trained on scikit-learn's digits, as ONNX, plus its data.

    python examples/make_example.py [--out examples]

Writes, deterministically from --seed:
  digits_mlp.onnx         64-32-16-10 MLP exported by torch.onnx.export (Gemm nodes)
  digits_mlp_wide.onnx    64-128-64-10 MLP, the same way: room for ADMM pruning and circulant blocks
  digits_matmul_add.onnx  the same kind of MLP written by hand with onnx.helper (MatMul + Add)
  digits_cnn.onnx         a small CNN on the 1x8x8 images: conv3x3(8)-relu-maxpool2,
                          conv3x3(16)-relu-maxpool2, flatten, dense 64-10
  digits.npz              x_train, y_train (the members), x_test, y_test (the non-members)
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def digits_data(seed: int) -> dict[str, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, random_state=seed, stratify=y)
    return {"x_train": x_tr, "y_train": y_tr.astype(np.int64), "x_test": x_te, "y_test": y_te.astype(np.int64)}


def train_mlp(data: dict, hidden: tuple[int, ...], seed: int, epochs: int = 60) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers, width = [torch.nn.Flatten()], 64
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))
    return _fit(model, data, seed, epochs)


def _fit(model: torch.nn.Module, data: dict, seed: int, epochs: int) -> torch.nn.Module:
    x = torch.from_numpy(data["x_train"])
    y = torch.from_numpy(data["y_train"])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def train_cnn(data: dict, seed: int, epochs: int = 60) -> torch.nn.Sequential:
    """The CNN trains on images with a channel axis; digits.npz stores them as (N, 8, 8), which
    `mpc` accepts for a (1, 8, 8) model input (compiler/data.py adds the axis)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 10),
    )
    images = dict(data, x_train=data["x_train"][:, None])
    return _fit(model, images, seed, epochs)


def export_torch(model: torch.nn.Module, path: Path, input_shape=(8, 8)) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, *input_shape),),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamo=False,
            dynamic_axes={"image": {0: "batch"}},
            opset_version=17,
        )


def export_matmul_add(model: torch.nn.Sequential, path: Path) -> None:
    """The MLP as a hand-written graph: Reshape, then MatMul + Add (+ Relu) per layer."""
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    nodes = [helper.make_node("Reshape", ["x", "flat_shape"], ["h0"], name="flatten")]
    inits = [numpy_helper.from_array(np.array([-1, 64], np.int64), "flat_shape")]
    for i, lin in enumerate(linears):
        w = lin.weight.detach().numpy().T.copy()  # MatMul wants [in, out]
        b = lin.bias.detach().numpy().copy()
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [
            helper.make_node("MatMul", [f"h{i}", f"w{i}"], [f"mm{i}"], name=f"matmul{i}"),
            helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}"], name=f"add{i}"),
        ]
        if i < len(linears) - 1:
            nodes.append(helper.make_node("Relu", [f"z{i}"], [f"h{i + 1}"], name=f"relu{i}"))
    nodes.append(helper.make_node("Softmax", [f"z{len(linears) - 1}"], ["probs"], name="softmax", axis=-1))
    graph = helper.make_graph(
        nodes,
        "digits_matmul_add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="mpc-example")
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = digits_data(args.seed)
    np.savez_compressed(args.out / "digits.npz", **data)
    export_torch(train_mlp(data, (32, 16), args.seed), args.out / "digits_mlp.onnx")
    export_torch(train_mlp(data, (128, 64), args.seed), args.out / "digits_mlp_wide.onnx")
    export_matmul_add(train_mlp(data, (24,), args.seed + 1), args.out / "digits_matmul_add.onnx")
    export_torch(train_cnn(data, args.seed), args.out / "digits_cnn.onnx", input_shape=(1, 8, 8))
    print(
        f"wrote {args.out}/digits_mlp.onnx, digits_mlp_wide.onnx, digits_matmul_add.onnx, digits_cnn.onnx, digits.npz"
    )


if __name__ == "__main__":
    main()
