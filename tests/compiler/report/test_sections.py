"""Report sections are registered per pass and attack (compiler/report/sections/): report.py and
markdown.py know none by name, so a new one appears without editing them."""

import pytest

from compiler.ir import Graph
from compiler.report.markdown import privacy_section
from compiler.report.sections import ATTACK_SECTIONS, PASS_SECTIONS, AttackSection
from compiler.report.sections.base import register_attack_section


def test_the_registered_sections():
    assert list(PASS_SECTIONS) == ["qonnx", "lower", "fine_prune", "circulant", "dp_sgd"]
    assert list(ATTACK_SECTIONS) == ["membership", "backdoor", "bitflip"]


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        register_attack_section(AttackSection("bitflip", lambda audit: []))


def test_a_new_attack_section_renders_without_editing_markdown(monkeypatch):
    sections = dict(ATTACK_SECTIONS) | {"probe": AttackSection("probe", lambda audit: [f"## Probe {audit['n']}"])}
    monkeypatch.setattr("compiler.report.markdown.ATTACK_SECTIONS", sections)
    assert privacy_section({"n": 3, "targets": {}})[-1] == "## Probe 3"


def test_pass_sections_read_the_graphs_meta():
    """lower's record is `model.narrowed`, dp_sgd's guarantee is report.json `privacy_training`."""
    dp = {"epsilon": 3.0, "delta": 1e-5, "noise_multiplier": 1.1, "max_grad_norm": 1.0, "init": "current", "steps": 9}
    compiled = Graph([], [], [], meta={"narrowed_layers": {"fc1": {}}, "dp_sgd": dp})
    original = Graph([], [], [], meta={})
    assert PASS_SECTIONS["lower"].model_fields(original, compiled) == {"narrowed": {"fc1": {}}}
    assert PASS_SECTIONS["qonnx"].model_fields(original, compiled) == {}
    fields = PASS_SECTIONS["dp_sgd"].report_fields(original, compiled)
    assert fields == {"privacy_training": {"dp_sgd": {k: v for k, v in dp.items() if k != "steps"}}}
