"""What the torch forwards and gradient stand-ins of several ops share: padding and broadcasting.

Imports torch only inside the functions (torch is heavy; loading the registry does not load it).
"""

from __future__ import annotations

from typing import Any

from compiler.ir import Node


def per_channel(v: Any, x: Any) -> Any:
    """A [C] vector shaped to broadcast along axis 1 of x ([N, C] or [N, C, H, W])."""
    return v.reshape(1, -1, *([1] * (x.dim() - 2)))


def symmetric(node: Node) -> bool:
    """pads [top, left, bottom, right] that torch's own padding argument expresses (at most half
    the kernel, as torch's pooling requires)."""
    top, left, bottom, right = node.attrs["pads"]
    kh, kw = node.attrs["kernel"]
    return top == bottom and left == right and top <= kh // 2 and left <= kw // 2


def pad(x: Any, node: Node, value: float = 0.0) -> Any:
    from torch.nn import functional as F

    top, left, bottom, right = node.attrs["pads"]
    return F.pad(x, (left, right, top, bottom), value=value)


def pads4(pads) -> tuple[int, int, int, int]:
    return (pads,) * 4 if isinstance(pads, int) else tuple(int(p) for p in pads)  # type: ignore[return-value]


def pool_stand_in(node: Node, x: Any, reduce) -> Any:
    """A pool of the zero-padded input (the gradient stand-in of max and average pooling)."""
    from torch.nn import functional as F

    a = node.attrs
    t, left, bottom, r = pads4(a["pads"])
    kernel = a["kernel"]
    return reduce(F.pad(x, (left, r, t, bottom)), kernel, a["stride"] or kernel)
