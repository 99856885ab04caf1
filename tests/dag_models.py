"""Tiny branching CNNs on the 1x8x8 digits, exported by torch.onnx, shared by the DAG tests:

- "residual": stem conv -> relu -> [conv -> relu -> conv] + skip -> add -> relu -> dense;
- "downsample": the same with a stride-2 first conv and a 1x1 stride-2 conv on the skip path;
- "concat": the two branches joined by a channel concat instead of an add.

`export_dag` trains the model briefly (full-batch Adam, a fixed seed) when given data, so the
integer accuracy can be compared with a meaningful float one."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

VARIANTS = ("residual", "downsample", "concat")


def dag_module(variant: str, channels: int = 4):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            down = variant == "downsample"
            self.stem = nn.Conv2d(1, channels, 3, padding=1)
            self.c1 = nn.Conv2d(channels, channels, 3, padding=1, stride=2 if down else 1)
            self.c2 = nn.Conv2d(channels, channels, 3, padding=1)
            self.skip = nn.Conv2d(channels, channels, 1, stride=2) if down else None
            side = 4 if down else 8
            width = 2 * channels if variant == "concat" else channels
            self.fc = nn.Linear(width * side * side, 10)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            y = self.c2(torch.relu(self.c1(x)))
            skip = self.skip(x) if self.skip is not None else x
            z = torch.cat([y, skip], 1) if variant == "concat" else torch.relu(y + skip)
            return self.fc(torch.flatten(z, 1))

    return Block()


def export_dag(path: str | Path, variant: str, data=None, seed: int = 0, epochs: int = 60) -> Path:
    """The model written to `path` by torch.onnx (TorchScript exporter), trained on data.x_train
    (shape [N, 1, 8, 8]) for `epochs` full-batch steps when data is given."""
    import torch

    torch.manual_seed(seed)
    model = dag_module(variant)
    if data is not None:
        x = torch.from_numpy(np.asarray(data.x_train, dtype=np.float32))
        y = torch.from_numpy(np.asarray(data.y_train, dtype=np.int64))
        opt = torch.optim.Adam(model.parameters(), lr=0.02)
        for _ in range(epochs):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            torch.zeros(1, 1, 8, 8),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
        )
    return path
