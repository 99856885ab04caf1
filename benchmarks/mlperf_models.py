"""The four MLPerf Tiny reference models as PyTorch modules, their data, brief training and export.

Rebuilt from the reference Keras definitions in github.com/mlcommons/tiny (v0.5/v1.0),
benchmark/training/:

    keyword_spotting/keras_model.py       DS-CNN (KWS), 49x10x1 MFCC, 12 classes
    image_classification/keras_model.py   ResNet-8 (resnet_v1_eembc, IC), 32x32x3 CIFAR-10
    visual_wake_words/vww_model.py        MobileNetV1 alpha 0.25 (VWW), 96x96x3, 2 classes
    anomaly_detection/keras_model.py      FC autoencoder (AD), 640 inputs (5 frames x 128 log-mels)

Parameter counts are the reference's trainable ones (Keras counts BatchNorm's moving mean and
variance too, as non-trainable; torch's `parameters()` does not). Keras's padding="same" on a
stride-2 layer pads asymmetrically (more at the bottom/right); PyTorch has no such Conv2d option,
so these modules use the symmetric `padding` that gives the same output shape, as a PyTorch user
porting the model writes it (the function differs only in which border row a window sees, and
the models are trained here from scratch).

Data: CIFAR-10 (the test set in ../shared/data, split train/test) for ResNet-8; synthetic data of
the reference's input shape elsewhere (no Speech Commands, Visual Wake Words or ToyADMOS here):
`DATA_SOURCES` says which.

    from benchmarks.mlperf_models import MODELS, build
    built = build("kws", folder, exporters=("torchscript", "dynamo"), budget="test")
    # built.model_paths["dynamo"], built.data_path, built.float_metrics, built.params
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.datasets import default_data_root, load_cifar10

TRAIN_THREADS = 2  # the machines these run on have 2 cores, shared

# The reference's trainable parameters (computed from its layer list, see each module) and the
# figure issue 27 quotes for it.
REFERENCE_PARAMS = {"kws": 23_756, "ic": 78_186, "vww": 213_586, "ad": 267_928}
ISSUE_PARAMS = {"kws": 23_800, "ic": 78_000, "vww": 214_000, "ad": 268_000}

DATA_SOURCES = {
    "kws": "synthetic: 12 class templates of 49x10 MFCC shape, time-shifted, scaled, plus noise",
    "ic": "real: CIFAR-10 test set (../shared/data/cifar10), shuffled and split train/test",
    "vww": "synthetic: 96x96x3 textured background, class 1 adds a bright person-sized blob",
    "ad": "synthetic: 640-dim normal rows from a rank-8 generator; anomalies from another one (a_test)",
}


# ---- the models ---------------------------------------------------------------------------------
def _conv_bn_relu(nn, c_in: int, c_out: int, kernel, stride=1, padding=0, groups: int = 1, bias: bool = True):
    return [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, groups=groups, bias=bias),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]


def ds_cnn(n_classes: int = 12, filters: int = 64):
    """KWS DS-CNN (keyword_spotting/keras_model.py, model_name "ds_cnn"): Conv2D(64, (10, 4),
    strides 2, same) + BN + ReLU; 4 x [DepthwiseConv2D(3x3, same) + BN + ReLU, Conv2D(64, 1x1) +
    BN + ReLU]; AveragePooling2D((25, 5)); Flatten; Dense(12). Dropout (0.2, 0.4) is a no-op at
    inference and left out. Keras's "same" on 49x10 with stride 2 pads rows 4/5 and columns 1/1;
    padding (5, 1) gives the same 25x5 output."""
    import torch.nn as nn

    layers = _conv_bn_relu(nn, 1, filters, (10, 4), stride=2, padding=(5, 1))
    for _ in range(4):
        layers += _conv_bn_relu(nn, filters, filters, 3, padding=1, groups=filters)  # depthwise
        layers += _conv_bn_relu(nn, filters, filters, 1)  # pointwise
    layers += [nn.AvgPool2d((25, 5)), nn.Flatten(), nn.Linear(filters, n_classes)]
    return nn.Sequential(*layers)


def _residual_block(c_in: int, c_out: int, stride: int):
    """One stack of resnet_v1_eembc: conv3x3(stride) + BN + ReLU, conv3x3 + BN, added to the input
    (through a 1x1 conv with the same stride where the shape changes; no BN on that path), ReLU."""
    import torch
    import torch.nn as nn

    class ResidualBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                *_conv_bn_relu(nn, c_in, c_out, 3, stride=stride, padding=1),
                nn.Conv2d(c_out, c_out, 3, padding=1),
                nn.BatchNorm2d(c_out),
            )
            self.skip = nn.Conv2d(c_in, c_out, 1, stride=stride) if (stride != 1 or c_in != c_out) else nn.Identity()

        def forward(self, x):
            return torch.relu(self.body(x) + self.skip(x))

    return ResidualBlock()


def resnet8(n_classes: int = 10):
    """IC ResNet-8 (image_classification/keras_model.py, resnet_v1_eembc): Conv2D(16, 3x3) + BN +
    ReLU; residual stacks of 16, 32 (stride 2) and 64 (stride 2) filters; AveragePooling2D(8);
    Flatten; Dense(10)."""
    import torch.nn as nn

    return nn.Sequential(
        *_conv_bn_relu(nn, 3, 16, 3, padding=1),
        _residual_block(16, 16, 1),
        _residual_block(16, 32, 2),
        _residual_block(32, 64, 2),
        nn.AvgPool2d(8),
        nn.Flatten(),
        nn.Linear(64, n_classes),
    )


# (stride, output channels at alpha = 1) of MobileNetV1's 13 depthwise-separable blocks
MOBILENET_BLOCKS = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 + [(2, 1024), (1, 1024)]


def mobilenet_v1(alpha: float = 0.25, n_classes: int = 2):
    """VWW MobileNetV1 (visual_wake_words/vww_model.py): Conv2D(32 alpha, 3x3, strides 2) + BN +
    ReLU; 13 x [DepthwiseConv2D(3x3, stride) + BN + ReLU, Conv2D(1x1) + BN + ReLU]; average pool
    over the final 3x3; Flatten; Dense(2). Convolutions without bias (the BN after each has one)."""
    import torch.nn as nn

    width = int(32 * alpha)
    layers = _conv_bn_relu(nn, 3, width, 3, stride=2, padding=1, bias=False)
    for stride, channels in MOBILENET_BLOCKS:
        out = int(channels * alpha)
        layers += _conv_bn_relu(nn, width, width, 3, stride=stride, padding=1, groups=width, bias=False)
        layers += _conv_bn_relu(nn, width, out, 1, bias=False)
        width = out
    layers += [nn.AvgPool2d(3), nn.Flatten(), nn.Linear(width, n_classes)]
    return nn.Sequential(*layers)


def fc_autoencoder(inputs: int = 640, hidden: int = 128, bottleneck: int = 8):
    """AD FC autoencoder (anomaly_detection/keras_model.py): 4 x [Dense(128) + BN + ReLU],
    Dense(8) + BN + ReLU, 4 x [Dense(128) + BN + ReLU], Dense(640)."""
    import torch.nn as nn

    widths = [inputs] + [hidden] * 4 + [bottleneck] + [hidden] * 4
    layers: list = []
    for a, b in zip(widths, widths[1:], strict=False):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, inputs))


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---- data ---------------------------------------------------------------------------------------
def kws_data(n_train: int, n_test: int, seed: int = 0) -> dict:
    """12 classes of 49x10 'MFCC' maps: each class a smooth random template (low-pass along time,
    as MFCC frames are), shown shifted by up to +-4 frames, scaled 0.7..1.3, plus N(0, 0.6) noise."""
    rng = np.random.default_rng(seed)
    templates = _smooth(rng.normal(size=(12, 49 + 8, 10)), axis=1, width=5)
    n = n_train + n_test
    y = rng.integers(0, 12, n)
    shift = rng.integers(0, 9, n)
    x = np.stack([templates[c, s : s + 49] for c, s in zip(y, shift, strict=True)])
    x = x * rng.uniform(0.7, 1.3, (n, 1, 1)) + rng.normal(0, 0.6, x.shape)
    return _split(x[:, None].astype(np.float32), y, n_train)


def vww_data(n_train: int, n_test: int, seed: int = 0) -> dict:
    """96x96x3 images in [0, 1]: a coarse random colour texture (8x8-pixel blocks, values up to
    0.5); in class 1 ('person') also an upright ellipse of a bright skin-like colour the background
    never reaches, 20-40 px tall, somewhere in the frame."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    coarse = rng.uniform(0.0, 0.5, (n, 3, 12, 12))
    x = coarse.repeat(8, axis=2).repeat(8, axis=3) + rng.normal(0, 0.05, (n, 3, 96, 96))
    y = rng.integers(0, 2, n)
    rows, cols = np.mgrid[0:96, 0:96]
    for i in np.flatnonzero(y):
        h = rng.uniform(10, 20)
        cy, cx = rng.uniform(h, 96 - h), rng.uniform(10, 86)
        inside = ((rows - cy) / h) ** 2 + ((cols - cx) / (h / 2.5)) ** 2 <= 1
        x[i][:, inside] = np.array([1.0, 0.8, 0.6])[:, None] + rng.normal(0, 0.05, (3, int(inside.sum())))
    return _split(np.clip(x, 0, 1).astype(np.float32), y, n_train)


def ad_data(n_train: int, n_test: int, seed: int = 0) -> dict:
    """Autoencoder data without labels: x_train is all normal; x_test half normal, half anomalous,
    `a_test` 1 on the anomalies. Normal rows: a rank-8 generator (smooth spectral bases, as 5
    frames x 128 log-mels are) + small noise; anomalies: the same plus a second rank-8 generator's
    component the training data never shows. No y_*: the target is the input (issue 27)."""
    rng = np.random.default_rng(seed)
    normal_basis = _smooth(rng.normal(size=(8, 640)), axis=1, width=9) / np.sqrt(8)  # unit variance
    anomaly_basis = _smooth(rng.normal(size=(8, 640)), axis=1, width=9) / np.sqrt(8)

    def rows(n, anomalous):
        x = rng.normal(size=(n, 8)) @ normal_basis + rng.normal(0, 0.1, (n, 640))
        if anomalous:
            x += 0.6 * rng.normal(size=(n, 8)) @ anomaly_basis
        return x.astype(np.float32)

    n_anomalous = n_test // 2
    x_test = np.concatenate([rows(n_test - n_anomalous, False), rows(n_anomalous, True)])
    a_test = np.r_[np.zeros(n_test - n_anomalous), np.ones(n_anomalous)].astype(np.int64)
    order = rng.permutation(n_test)
    return {"x_train": rows(n_train, False), "x_test": x_test[order], "a_test": a_test[order]}


def cifar10_data(n_train: int, n_test: int, seed: int = 0, root: Path | None = None) -> dict:
    """CIFAR-10's test set (the training set is not here), shuffled, split n_train / n_test.
    Inputs in [0, 1], NCHW (the reference scales to [0, 1] too)."""
    x, y = load_cifar10(root or default_data_root())
    order = np.random.default_rng(seed).permutation(len(x))[: n_train + n_test]
    return _split(x[order], y[order], n_train)


def _smooth(a: np.ndarray, axis: int, width: int) -> np.ndarray:
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    out = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, a)
    return out / out.std()


def _split(x: np.ndarray, y: np.ndarray, n_train: int) -> dict:
    return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:], "y_test": y[n_train:]}


def write_data(data: dict, path: Path) -> Path:
    """DATA.npz as compiler/data.py reads it: x_train, y_train, x_test, y_test; the autoencoder's
    has no y_* (reconstruct the input) and a_test (1 = anomalous row)."""
    arrays: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in data.items()}
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return path


# ---- training -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    n_train: int
    n_test: int
    epochs: int
    lr: float = 3e-3
    batch_size: int = 64


def train(model, data: dict, budget: Budget, seed: int = 0):
    """Adam over shuffled minibatches on TRAIN_THREADS threads: cross-entropy on y_train, or the
    reconstruction MSE where there are no labels (the autoencoder). Deterministic from `seed`."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        torch.manual_seed(seed)
        for module in model.modules():  # initial weights from the seed, whatever ran before
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        x = torch.from_numpy(data["x_train"])
        y = torch.from_numpy(data["y_train"]) if "y_train" in data else None
        opt = torch.optim.Adam(model.parameters(), lr=budget.lr)
        steps = budget.epochs * -(-len(x) // budget.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=budget.lr, total_steps=max(steps, 1))
        gen = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(budget.epochs):
            for idx in torch.randperm(len(x), generator=gen).split(budget.batch_size):
                if len(idx) < 2:  # BatchNorm cannot train on one row
                    continue
                opt.zero_grad()
                out = model(x[idx])
                if y is None:
                    loss = torch.nn.functional.mse_loss(out, x[idx])
                else:
                    loss = torch.nn.functional.cross_entropy(out, y[idx])
                loss.backward()
                opt.step()
                schedule.step()
    finally:
        torch.set_num_threads(previous)
    return model.eval()


def float_metrics(model, data: dict) -> dict:
    """Test accuracy of a classifier; MSE (on normal rows and overall) and the anomaly-detection
    AUC of the per-row reconstruction error of the autoencoder."""
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(data["x_test"])).numpy()
    if "y_test" in data:
        return {"accuracy": float((out.argmax(1) == data["y_test"]).mean())}
    errors = ((out - data["x_test"]) ** 2).mean(axis=1)
    a = data["a_test"]
    return {"mse": float(errors.mean()), "mse_normal": float(errors[a == 0].mean()), "auc": auc(errors, a)}


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ---- export -------------------------------------------------------------------------------------
EXPORTERS = ("torchscript", "dynamo")


def export(model, path: str | Path, example, exporter: str = "torchscript") -> Path:
    """MODEL.onnx as torch.onnx writes it: the TorchScript exporter (opset 17) or the dynamo one
    (torch.export + onnxscript); batch axis dynamic, input `x`, output `y`."""
    import torch

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter {exporter!r}: use one of {', '.join(EXPORTERS)}")
    path = Path(path)
    # two rows: torch.export specializes a dynamic axis that the example gives size 1
    example = (torch.as_tensor(np.asarray(example[:2], np.float32)),)
    torch_onnx_export(model, example, path, dynamo=exporter == "dynamo")
    return path


def torch_onnx_export(model, example: tuple, path: Path, dynamo: bool) -> None:
    """torch.onnx.export as the exporter corpus and these models use it: input `x`, output `y`,
    batch axis dynamic; TorchScript at opset 17 or dynamo; the exporters' chatter silenced."""
    import torch

    # the dynamo exporter narrates its steps on stdout and logs that torchvision is missing:
    # keep a benchmark's table clean
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=True,
                input_names=["x"],
                output_names=["y"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
        else:
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=False,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}},
                opset_version=17,
            )


# ---- the four, end to end -----------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    key: str
    title: str
    make: Callable
    data: Callable[[int, int, int], dict]
    task: str  # "classification" or "regression"
    budgets: dict = field(default_factory=dict)  # "test", "quick", "full" -> Budget


MODELS = {
    "kws": ModelSpec(
        "kws",
        "KWS DS-CNN",
        ds_cnn,
        kws_data,
        "classification",
        {"test": Budget(512, 64, 3, batch_size=32), "quick": Budget(1000, 200, 4), "full": Budget(3000, 500, 6)},
    ),
    "ic": ModelSpec(
        "ic",
        "IC ResNet-8",
        resnet8,
        cifar10_data,
        "classification",
        {
            "test": Budget(512, 64, 2, lr=1e-2, batch_size=32),
            "quick": Budget(2000, 200, 2, lr=1e-2, batch_size=32),
            "full": Budget(8000, 500, 4, lr=1e-2, batch_size=32),
        },
    ),
    "vww": ModelSpec(
        "vww",
        "VWW MobileNetV1 x0.25",
        mobilenet_v1,
        vww_data,
        "classification",
        {
            "test": Budget(384, 32, 3, lr=1e-2, batch_size=32),
            "quick": Budget(600, 100, 3, lr=1e-2, batch_size=32),
            "full": Budget(1500, 300, 4, lr=1e-2, batch_size=32),
        },
    ),
    "ad": ModelSpec(
        "ad",
        "AD FC autoencoder",
        fc_autoencoder,
        ad_data,
        "regression",
        {"test": Budget(512, 64, 8, batch_size=32), "quick": Budget(1000, 200, 20), "full": Budget(3000, 500, 40)},
    ),
}


@dataclass
class Built:
    key: str
    model_paths: dict  # exporter -> MODEL.onnx
    data_path: Path
    params: int
    float_metrics: dict
    data_source: str
    train_seconds: float


def build(key: str, folder: str | Path, exporters=("torchscript",), budget: str = "quick", seed: int = 0) -> Built:
    """Train model `key` once on its data at `budget` ("test", "quick", "full"), export it with
    each of `exporters` as FOLDER/<key>_<exporter>.onnx, and write FOLDER/<key>.npz."""
    import time

    spec = MODELS[key]
    plan = spec.budgets[budget]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = spec.data(plan.n_train, plan.n_test, seed)
    start = time.perf_counter()
    model = train(spec.make(), data, plan, seed)
    seconds = time.perf_counter() - start
    paths = {e: export(model, folder / f"{key}_{e}.onnx", data["x_train"], e) for e in exporters}
    data_path = write_data(data, folder / f"{key}.npz")
    metrics = float_metrics(model, data)
    return Built(key, paths, data_path, count_params(model), metrics, DATA_SOURCES[key], seconds)


def check_param_counts() -> list[tuple[str, int, int, int]]:
    """(key, counted, reference, issue's figure) for the four models; ValueError where a count
    differs from the reference's."""
    rows = []
    for key, spec in MODELS.items():
        n = count_params(spec.make())
        if n != REFERENCE_PARAMS[key]:
            raise ValueError(f"{spec.title}: {n} parameters, the reference has {REFERENCE_PARAMS[key]}")
        rows.append((key, n, REFERENCE_PARAMS[key], ISSUE_PARAMS[key]))
    return rows


if __name__ == "__main__":  # pragma: no cover - prints the parameter counts
    for key, n, ref, issue in check_param_counts():
        print(f"{MODELS[key].title:24} {n:>8,} parameters (reference {ref:,}; issue 27 quotes ~{issue:,})")
