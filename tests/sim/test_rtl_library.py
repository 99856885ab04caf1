"""rtl/__init__.py: each library module's dependencies are read from the files, so every engine
elaborates with exactly `rtl.sources(module)` and nothing is listed by hand."""

import shutil
import subprocess

import pytest

import rtl

ENGINES = ["dense_mac.v", "sparse_mac.v", "circulant_mac.v", "conv2d.v", "pool2d.v", "argmax.v"]


def test_dependencies_come_first_and_are_complete():
    assert rtl.sources("dense_mac.v") == [
        "requantize.v",
        "engine_output.v",
        "word_pack.v",
        "mac_input.v",
        "mac_lanes.v",
        "rom_check.v",
        "rom_port.v",
        "dense_mac.v",
    ]
    assert {"line_rows.v", "mac_lanes.v", "engine_output.v"} <= set(rtl.DEPENDENCIES["conv2d.v"])
    assert "mac_lanes.v" not in rtl.DEPENDENCIES["pool2d.v"] and rtl.DEPENDENCIES["argmax.v"] == ()
    with pytest.raises(KeyError, match="nonesuch.v"):
        rtl.sources("nonesuch.v")


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog not installed")
@pytest.mark.parametrize("module", ENGINES)
def test_each_engine_elaborates_with_exactly_its_sources(tmp_path, module):
    top = module.removesuffix(".v")
    result = subprocess.run(
        ["iverilog", "-g2012", "-s", top, "-o", str(tmp_path / "a.out"), *map(str, rtl.paths(module))],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
