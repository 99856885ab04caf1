"""Data sets and target models for benchmarks and audits: loaders, member/non-member splits,
and a torch MLP trainer that writes MODEL.onnx + DATA.npz ready for `mpc compile`.

The real data sets live outside the repository (../shared/data by default; see its README);
they are read in place, never copied. Loaders return float32 inputs in [0, 1] and int64 labels.

    from benchmarks.datasets import load_location, member_split, train_onnx_mlp
    x, y = load_location(default_data_root())
    data = member_split(x, y, n_members=1200, n_non_members=1200, seed=0)
    model_path, data_path = train_onnx_mlp(data, hidden=(128,), out_dir=tmp, name="location")
"""

from __future__ import annotations

import gzip
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_data_root() -> Path:
    """`../shared/data` relative to the repository root (where CI mounts the shared data)."""
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


# ---- loaders ------------------------------------------------------------------------------
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 images): x [N, 8, 8] in [0, 1]."""
    from sklearn.datasets import load_digits as sk_digits

    x, y = sk_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32).reshape(-1, 8, 8), y.astype(np.int64)


def load_mnist(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test set from its IDX gzip files: x [10000, 28, 28] in [0, 1], y int64."""
    folder = Path(root) / "mnist"
    images = _read_idx(folder / "t10k-images-idx3-ubyte.gz", magic=0x803)
    labels = _read_idx(folder / "t10k-labels-idx1-ubyte.gz", magic=0x801)
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return (images / 255.0).astype(np.float32), labels.astype(np.int64)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """IDX format: big-endian magic (0x08 = uint8 data, low byte = number of dimensions),
    one big-endian uint32 per dimension, then the data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: IDX magic {found:#x}, expected {magic:#x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_cifar10(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The CIFAR-10 test set: x [10000, 3, 32, 32] NCHW in [0, 1], y int64. Rows are sorted by
    class in the file: shuffle (member_split does) before splitting."""
    with np.load(Path(root) / "cifar10" / "cifar10_test.npz") as npz:
        x, y = npz["x"], npz["y"]
    return (x.transpose(0, 3, 1, 2) / 255.0).astype(np.float32), y.astype(np.int64)


def load_location(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Location (Bangkok check-ins, Shokri et al. 2017): x [5010, 446] of 0/1, y in 0..29.

    Read straight from the tarball: one CSV member `bangkok`, a quoted label 1..30 then 446
    features per row."""
    path = Path(root) / "location" / "dataset_location.tgz"
    with tarfile.open(path, "r:gz") as tar:
        member = next((m for m in tar.getmembers() if Path(m.name).name == "bangkok" and m.isfile()), None)
        if member is None:
            raise ValueError(f"{path}: no CSV member named 'bangkok'")
        text = tar.extractfile(member).read().decode("ascii")
    rows = [line.split(",") for line in text.splitlines() if line.strip()]
    y = np.array([int(r[0].strip().strip('"')) - 1 for r in rows], dtype=np.int64)
    x = np.array([r[1:] for r in rows], dtype=np.float32)
    if x.shape[1] != 446:
        raise ValueError(f"{path}: rows have {x.shape[1]} features, expected 446")
    return x, y


# ---- splits -------------------------------------------------------------------------------
def member_split(x: np.ndarray, y: np.ndarray, n_members: int, n_non_members: int, seed: int = 0) -> dict:
    """A shuffled, disjoint split: x_train/y_train (the members a model trains on) and
    x_test/y_test (the non-members), as DATA.npz wants them."""
    if n_members + n_non_members > len(x):
        raise ValueError(f"asked for {n_members} + {n_non_members} examples, only {len(x)} available")
    order = np.random.default_rng(seed).permutation(len(x))
    train, test = order[:n_members], order[n_members : n_members + n_non_members]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


# ---- target models ------------------------------------------------------------------------
@dataclass
class MlpRecipe:
    """How a benchmark's target MLP is trained: Adam on cross-entropy, no regularization unless
    asked (so that it overfits a small training set and leaks measurably)."""

    hidden: tuple[int, ...] = (128,)
    epochs: int = 60
    lr: float = 3e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0


def make_mlp(input_shape: tuple[int, ...], n_classes: int, hidden: tuple[int, ...]):
    import torch

    layers, width = [torch.nn.Flatten()], int(np.prod(input_shape))
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, n_classes))


def make_lenet5(n_classes: int = 10):
    """LeNet-5 for 1x28x28 input (LeCun et al. 1998, with ReLU and max pooling as usual today):
    conv5x5(6, pad 2) - pool2 - conv5x5(16) - pool2 - 400-120-84-10; 61,706 weights."""
    import torch

    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, n_classes),
    )


def make_digits_cnn():
    """The bundled example's CNN (examples/make_example.py): conv3x3(8)-pool-conv3x3(16)-pool-64-10."""
    import torch

    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def make_cifar_cnn(n_classes: int = 10):
    """A small CIFAR-10 CNN for 3x32x32 input that trains on 2 CPU cores in minutes:
    three conv3x3 (16, 32, 32) - relu - pool2 stages, then 512-10."""
    import torch

    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(512, n_classes),
    )


def train_torch_mlp(x: np.ndarray, y: np.ndarray, n_classes: int, recipe: MlpRecipe):
    """Train a fresh MLP on (x, y); deterministic from recipe.seed."""
    import torch

    torch.manual_seed(recipe.seed)
    return train_torch_classifier(make_mlp(x.shape[1:], n_classes, recipe.hidden), x, y, recipe)


def train_torch_classifier(model, x: np.ndarray, y: np.ndarray, recipe: MlpRecipe):
    """Adam on cross-entropy over shuffled minibatches; deterministic from recipe.seed."""
    import torch

    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    gen = torch.Generator().manual_seed(recipe.seed)
    for _ in range(recipe.epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(recipe.batch_size):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def export_onnx(model, input_shape: tuple[int, ...], path: str | Path, input_name: str = "input") -> Path:
    """Export a torch classifier as ONNX (opset 17, dynamic batch, output `logits`)."""
    import torch

    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, *input_shape),),
            str(path),
            input_names=[input_name],
            output_names=["logits"],
            dynamo=False,
            dynamic_axes={input_name: {0: "batch"}},
            opset_version=17,
        )
    return path


def train_onnx_mlp(
    data: dict, out_dir: str | Path, name: str, recipe: MlpRecipe | None = None, n_classes: int | None = None
) -> tuple[Path, Path]:
    """Train an MLP on data['x_train'], write OUT_DIR/NAME.onnx and OUT_DIR/NAME.npz (the data,
    members = x_train); return both paths, ready for `mpc compile NAME.onnx --data NAME.npz`."""
    recipe = recipe or MlpRecipe()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if n_classes is None:
        n_classes = int(max(data["y_train"].max(), data["y_test"].max())) + 1
    model = train_torch_mlp(data["x_train"], data["y_train"], n_classes, recipe)
    model_path = export_onnx(model, data["x_train"].shape[1:], out_dir / f"{name}.onnx")
    data_path = out_dir / f"{name}.npz"
    np.savez_compressed(data_path, **{k: np.asarray(v) for k, v in data.items()})
    return model_path, data_path


def train_onnx_model(make_model, data: dict, out_dir: str | Path, name: str, recipe: MlpRecipe) -> tuple[Path, Path]:
    """train_onnx_mlp for any architecture: `make_model()` builds a fresh torch model."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    model = train_torch_classifier(make_model(), data["x_train"], data["y_train"], recipe)
    model_path = export_onnx(model, data["x_train"].shape[1:], out_dir / f"{name}.onnx")
    data_path = out_dir / f"{name}.npz"
    np.savez_compressed(data_path, **{k: np.asarray(v) for k, v in data.items()})
    return model_path, data_path


def accuracy_of(model, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        return float((model(torch.from_numpy(np.asarray(x, np.float32))).argmax(1).numpy() == y).mean())


def _self_check(root: Path) -> None:  # pragma: no cover - a manual smoke test
    for loader in (load_mnist, load_cifar10, load_location):
        x, y = loader(root)
        print(
            f"{loader.__name__}: x {x.shape} {x.dtype} [{x.min()}, {x.max()}], y {y.shape} "
            f"{y.dtype} classes {y.min()}..{y.max()}"
        )


if __name__ == "__main__":  # pragma: no cover
    import sys

    _self_check(Path(sys.argv[1]) if len(sys.argv) > 1 else default_data_root())
