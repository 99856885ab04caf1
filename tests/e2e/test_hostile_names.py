"""Model text is data, never code (issue 12): a model whose every name, doc string and metadata
field holds Verilog, Markdown, HTML and terminal escapes compiles, simulates and compares; the
generated hardware holds none of it, the reports show it escaped, and nothing is written
outside OUT. (Earlier, a node name with a newline put an `initial $fopen` block into mpc_top.v.)"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import onnx
import pytest

from compiler.cli import main
from compiler.report.compare import format_table, render_html
from compiler.report.text import md_code, md_text, printable
from tests.conftest import EXAMPLES, ROOT

MARK = "ZQX"  # in every hostile string: found anywhere generated, a model string got there
HOSTILE = [
    f'{MARK}\n`endif\ninitial begin $fdisplay($fopen("pwned"), "owned"); end\n`ifndef SYNTHESIS // ',
    f'{MARK} */ `include "pwned.vh" /* // end of comment',
    f"{MARK}<script>alert(1)</script>",
    f"{MARK} | pipe | `tick` **bold** [link](http://pwned.example) &amp;",
    f'{MARK}$display("pwned");\r\n# heading\n| fake | row |',
    f"{MARK}\x1b[2J\x1b]0;pwned\x07 ünïcödé \u202egnp.exe 漢字 \U0001f600",
    f"{MARK}" + "L" * 10_000,
]
TEXT_SUFFIXES = {".v", ".mem", ".f", ".sv", ".vh", ".txt", ".ys", ".cmd", ".tcl", ".sh", ".mk", ""}


def hostile(i: int) -> str:
    return f"{HOSTILE[i % len(HOSTILE)]}#{i}"  # unique: ONNX names must be


def hostile_model(src: Path, dst: Path) -> onnx.ModelProto:
    """`src` with every name (nodes, tensors, initializers, input, output, graph), doc string and
    metadata field replaced by a hostile string."""
    m = onnx.load(str(src))
    g = m.graph
    tensors = [t for n in g.node for t in [*n.input, *n.output] if t]
    rename = {t: hostile(i) for i, t in enumerate(dict.fromkeys(tensors))}
    for n in g.node:
        n.input[:] = [rename.get(t, t) for t in n.input]
        n.output[:] = [rename.get(t, t) for t in n.output]
    for values in (g.input, g.output, g.value_info, g.initializer):
        for v in values:
            v.name = rename.get(v.name, v.name)
            v.doc_string = hostile(len(rename) + 1)
    for i, n in enumerate(g.node):
        n.name = hostile(100 + i)
        n.doc_string = hostile(200 + i)
    g.name, g.doc_string = hostile(300), hostile(301)
    m.doc_string, m.domain, m.producer_name, m.producer_version = (hostile(302 + k) for k in range(4))
    for k in range(3):
        entry = m.metadata_props.add()
        entry.key, entry.value = hostile(310 + k), hostile(320 + k)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return m


def listing(folder: Path, skip: Path | None = None) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if skip is None or skip not in (p, *p.parents)}


def unescaped(pattern: str, text: str) -> list[str]:
    """Occurrences of `pattern` not preceded by a Markdown backslash escape."""
    return re.findall(r"(?<!\\)" + pattern, text)


@pytest.mark.slow
def test_hostile_model_strings_stay_data(tmp_path, monkeypatch, capfd, digits_npz):
    work = tmp_path / "work"
    work.mkdir()
    model = hostile_model(EXAMPLES / "digits_mlp.onnx", work / "model.onnx")
    shutil.copy(digits_npz, work / "digits.npz")
    (work / "recipe.toml").write_text(  # circulant: its log line names layers, its ROMs get instance names
        'passes = ["canonicalize", "circulant", "lower"]\n[circulant]\nblock_size = 4\nepochs = 0\n'
    )
    before = listing(work)
    repo_before = {p.name for p in ROOT.iterdir()}
    monkeypatch.chdir(work)
    common = ["--data", "digits.npz", "--recipe", "recipe.toml", "-o", "out", "--no-synth"]
    assert main(["compile", "model.onnx", *common]) == 0
    assert main(["simulate", "out", "--samples", "8"]) == 0
    assert main(["compare", "out", "--html", "out/compare.html"]) == 0
    printed = capfd.readouterr()
    out = work / "out"

    # the hardware and everything handed to a tool: no model text at all
    design = json.loads((out / "rtl" / "design.json").read_text())
    assert [e["name"] for e in design["engines"]] == [n.name for n in model.graph.node if n.op_type == "Gemm"]
    assert MARK not in json.dumps([design["top"], design["sources"]])  # the yosys script is made of these
    generated = [p for p in out.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES]
    assert any(p.suffix == ".v" for p in generated) and any(p.suffix == ".mem" for p in generated)
    for path in generated:
        text = path.read_bytes().decode("utf-8", "replace")
        assert MARK not in text and "$fopen" not in text and "pwned" not in text, path
    sim_build = [p for p in (out / "sim_build").rglob("*") if p.is_file() and p.suffix not in (".npz", ".json")]
    for path in sim_build:  # the simulator's command files and logs
        assert MARK.encode() not in path.read_bytes(), path

    # report.md: every name shown, escaped; the tables keep their shape
    md = (out / "report.md").read_text()
    assert md_code(model.graph.node[1].name) in md
    assert "<script>" not in md and "\x1b" not in md and "\u202e" not in md and "\r" not in md
    assert not unescaped("`include", md) and not unescaped(r"\$fopen", md) and not unescaped(r"\[link\]", md)
    rows = md.split("## Layers")[1].split("\n\n")[1].splitlines()
    assert len(rows) == 2 + 3 and all(len(unescaped(r"\|", row)) == 10 for row in rows), rows
    assert json.loads((out / "report.json").read_text())["layers"][0]["name"] == model.graph.node[1].name

    # compare's page and the terminal
    page = (out / "compare.html").read_text()
    assert "<script>" not in page and MARK not in page
    terminal = printed.out + printed.err
    assert "\x1b" not in terminal and "\u202e" not in terminal and "\x07" not in terminal
    assert not [line for line in terminal.splitlines() if line.startswith(("`endif", "initial", "# heading"))]

    # nothing outside OUT: the working folder holds what it held plus OUT; no "pwned" anywhere
    assert listing(work, skip=out) == before
    assert not [p for p in tmp_path.rglob("*pwned*")] and not list(ROOT.glob("*pwned*"))
    assert {p.name for p in ROOT.iterdir()} <= repo_before | {".pytest_cache"}


# ---- the escaping functions, quickly --------------------------------------------------------
@pytest.mark.parametrize("name", HOSTILE + ["/0/Gemm", "a_b*c", " padded ", ""])
def test_markdown_escaping_is_one_literal_line(name):
    for shown in (md_code(name), md_text(name)):
        assert "\n" not in shown and "\r" not in shown and "<" not in shown and ">" not in shown
        assert not unescaped(r"\|", shown) and all(c.isprintable() for c in shown)
        if not shown.startswith("`"):
            assert not unescaped("[`*_\\[\\]$]", shown.replace("\\\\", ""))
    assert md_code("/0/Gemm") == "`/0/Gemm`"  # plain names stay code spans (tests/e2e/test_end_to_end_cnn.py)


def test_printable_writes_controls_as_escapes():
    assert printable("a\nb\x1b[31m\u202e") == "a\\x0ab\\x1b[31m\\u202e"
    assert printable("ünïcödé 漢字") == "ünïcödé 漢字"


def test_compare_escapes_build_text():
    row = {
        "build": "x/<script>alert(1)</script>\x1b[2J$\\frac{1$",
        "target": "fpga<b>",
        "float_accuracy": 0.9,
        "compiled_accuracy": 0.9,
        "compression_ratio": 4.0,
        "weight_bits": 100,
        "cycles": 10,
        "cycles_source": "estimate",
        "energy_float32_pj": 1e6,
        "energy_compiled_pj": 1e3,
        "energy_ratio": 1e3,
    }
    page = render_html([row])  # the plot labels this build: a `$` is no mathtext
    assert "<script>" not in page and "&lt;script&gt;" in page and "\x1b" not in page and "fpga<b>" not in page
    assert "\x1b" not in format_table([row])
