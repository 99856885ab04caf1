"""The frontend's one error: onnx.py, convert.py and qonnx.py all raise it (a module of its own, so
that none of them imports another for it)."""

from __future__ import annotations

from compiler.errors import MpcError


class FrontendError(MpcError, ValueError):
    """The model cannot be imported; the message names the file and every offending node."""
