"""Tiny sweeps: `lower` only (no training, no synthesis), a point builds in about a second."""

import pytest

QUIET = {"log": lambda *_: None, "progress": False}

SPACE = """passes = ["canonicalize", "lower"]
[lower]
weight_bits = [8, 6, 4]
[explore]
objectives = ["accuracy", "compression"]
"""


@pytest.fixture
def space_file(tmp_path):
    def write(text: str = SPACE, name: str = "space.toml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
