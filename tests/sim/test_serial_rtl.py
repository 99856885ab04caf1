"""The board top and its UART (rtl/uart_rx.v, rtl/uart_tx.v, rtl/serial_top.v): the UART bench
on two baud divisors, the serial bench (sim/test_serial_top.py) around toy designs that cover
every width branch of the wrapper (multi-byte features, narrow features, padded and unpadded
logits, one- and two-vector buffers, a host that breaks the protocol), the demo compiled and
simulated through its pins by `mpc simulate --serial`, Verilator lint, and yosys synthesis for
iCE40 without latches and with the input buffer in block RAM.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import rtl
from compiler import api
from compiler.backends import serial
from compiler.cli import main
from sim.runner import lint_verilator, run_cocotb
from tests.sim.test_rtl_modules import latch_report

HERE = Path(__file__).resolve().parent
UART_SOURCES = rtl.paths("uart_rx.v", "uart_tx.v") + [HERE / "uart_pair.v"]
SERIAL_SOURCES = rtl.paths("serial_top.v")
STALL_ENV = {"MPC_SIM_STALL_CYCLES": "20000"}


def _assert_passed(result: dict) -> None:
    if result["failed"] or not result["passed"]:
        log = Path(result["log"]).read_text(errors="replace")
        pytest.fail(f"cocotb: {result}\n... {log[-4000:]}")


# ------------------------------------------------------------------------ UART
@pytest.mark.parametrize("clks", [5, 8])
def test_uart_bench(tmp_path, clks):
    for module in ("uart_rx", "uart_tx"):
        lint_verilator(rtl.paths(f"{module}.v"), module, {"CLKS_PER_BIT": clks})
    result = run_cocotb(
        UART_SOURCES,
        "uart_pair",
        "test_uart",
        tmp_path,
        parameters={"CLKS_PER_BIT": clks},
        extra_env={"MPC_TB_CONFIG": json.dumps({"CLKS_PER_BIT": clks, "seed": clks})},
    )
    _assert_passed(result)


def test_uart_lints_at_the_board_rate():
    for module in ("uart_rx", "uart_tx"):
        lint_verilator(rtl.paths(f"{module}.v"), module, {"CLKS_PER_BIT": serial.CLKS_PER_BIT})


# ------------------------------------------------------------------------ toy designs
def toy_design(
    path: Path, n_in: int, in_bits: int, n_classes: int, logit_bits: int, idx_bits: int, pace: int = 1
) -> Path:
    """A stand-in `mpc_top` (the wrapper instantiates it without parameters, so its widths are
    written in): takes n_in features, at most one every `pace` cycles, then presents logit
    k = x[k % n_in] - x[(k + 1) % n_in] and their argmax (ties to the lowest index) until
    out_ready, with in_ready low meanwhile (as rtl/argmax.v), so the wrapper's buffer must hold
    what arrives."""
    cw = max(1, (n_in - 1).bit_length())
    pw = max(1, (pace - 1).bit_length())
    ext = logit_bits - in_bits
    lines = [
        "// Toy stand-in for a generated design: see tests/sim/test_serial_rtl.py toy_design.",
        "`default_nettype none",
        "module mpc_top (",
        "    input  wire clk, input wire rst,",
        f"    input  wire in_valid, output wire in_ready, input wire signed [{in_bits - 1}:0] in_data,",
        "    output wire out_valid, input wire out_ready,",
        f"    output wire [{n_classes * logit_bits - 1}:0] out_logits, output wire [{idx_bits - 1}:0] out_argmax,",
        "    output wire fault",
        ");",
        "    assign fault = 1'b0;   // no ROMs",
        f"    reg [{n_in * in_bits - 1}:0] xs;   // x[i] at [i*{in_bits} +: {in_bits}]",
        f"    reg [{cw - 1}:0] count;",
        "    reg full;",
        f"    reg [{pw - 1}:0] pace;   // a feature may be taken when it is 0",
        f"    assign in_ready = !full && pace == {pw}'d0;",
        "    always @(posedge clk) begin",
        f"        if (rst) pace <= {pw}'d0;",
        f"        else pace <= (pace == {pw}'d0) ? {pw}'d{pace - 1} : pace - 1'b1;",
        "    end",
        "    assign out_valid = full;",
        "    always @(posedge clk) begin",
        "        if (rst) begin",
        "            count <= 0;",
        "            full <= 1'b0;",
        "        end else if (in_valid && in_ready) begin",
        f"            xs <= {{in_data, xs[{n_in * in_bits - 1}:{in_bits}]}};",
        f"            count <= (count == {cw}'d{n_in - 1}) ? {cw}'d0 : count + 1'b1;",
        f"            if (count == {cw}'d{n_in - 1}) full <= 1'b1;",
        "        end else if (full && out_ready) begin",
        "            full <= 1'b0;",
        "        end",
        "    end",
    ]
    for k in range(n_classes):
        a, b = k % n_in, (k + 1) % n_in
        xa, xb = (f"xs[{i * in_bits + in_bits - 1}:{i * in_bits}]" for i in (a, b))
        sa, sb = (f"xs[{i * in_bits + in_bits - 1}]" for i in (a, b))
        lines += [
            f"    wire signed [{logit_bits - 1}:0] lg{k} = $signed({{{{{ext}{{{sa}}}}}, {xa}}}) - "
            f"$signed({{{{{ext}{{{sb}}}}}, {xb}}});",
            f"    assign out_logits[{k * logit_bits + logit_bits - 1}:{k * logit_bits}] = lg{k};",
        ]
    lines += [f"    wire [{idx_bits - 1}:0] idx0 = {idx_bits}'d0;"]
    if n_classes > 1:
        lines += [f"    wire signed [{logit_bits - 1}:0] best0 = lg0;"]
    for k in range(1, n_classes):
        if k < n_classes - 1:
            lines += [f"    wire signed [{logit_bits - 1}:0] best{k} = (lg{k} > best{k - 1}) ? lg{k} : best{k - 1};"]
        lines += [f"    wire [{idx_bits - 1}:0] idx{k} = (lg{k} > best{k - 1}) ? {idx_bits}'d{k} : idx{k - 1};"]
    lines += [f"    assign out_argmax = idx{n_classes - 1};", "endmodule", "`default_nettype wire", ""]
    path.write_text("\n".join(lines))
    return path


def toy_stimulus(path: Path, n: int, n_in: int, in_bits: int, n_classes: int, logit_bits: int, seed: int = 0) -> Path:
    """The .npz of sim/test_design.py for the toy: extremes first, then random vectors."""
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    x = rng.integers(lo, hi + 1, size=(n, n_in))
    x[0], x[1, ::2], x[1, 1::2] = lo, hi, lo
    logits = np.stack([x[:, k % n_in] - x[:, (k + 1) % n_in] for k in range(n_classes)], axis=1)
    np.savez(
        path,
        x_q=x,
        expected_logits=logits,
        expected_argmax=np.argmax(logits, axis=1),
        in_bits=in_bits,
        logit_bits=logit_bits,
        n_classes=n_classes,
    )
    return path


TOYS = {
    # 2-byte features (4 pad bits), 3-byte logits, a one-vector buffer, replies longer than vectors
    "wide_in_fifo1": dict(N_IN=3, IN_BITS=12, N_CLASSES=3, LOGIT_BITS=20, CLASS_BITS=2, CLKS_PER_BIT=5, FIFO_VECTORS=1),
    # 6-bit features in one byte, unpadded 2-byte logits, one class bit, a two-vector buffer, and
    # a design slower than the line (a feature every 120 cycles, a byte every 80): the host's
    # window of two vectors needs all of the buffer
    "narrow_in_fifo2": dict(
        N_IN=5, IN_BITS=6, N_CLASSES=2, LOGIT_BITS=16, CLASS_BITS=1, CLKS_PER_BIT=8, FIFO_VECTORS=2
    ),
}
TOY_PACE = {"wide_in_fifo1": 1, "narrow_in_fifo2": 120}


def run_toy(tmp_path: Path, case: str, faults: bool = True, corrupt: bool = False):
    p = dict(TOYS[case], IDLE_BITS=40)
    widths = (p["N_IN"], p["IN_BITS"], p["N_CLASSES"], p["LOGIT_BITS"], p["CLASS_BITS"])
    top = toy_design(tmp_path / "mpc_top.v", *widths, pace=TOY_PACE[case])
    stimulus = toy_stimulus(tmp_path / "stimulus.npz", 6, p["N_IN"], p["IN_BITS"], p["N_CLASSES"], p["LOGIT_BITS"])
    if corrupt:
        data = dict(np.load(stimulus))
        data["expected_logits"][1, 0] += 1
        np.savez(stimulus, **data)
    lint_verilator([top, *SERIAL_SOURCES], serial.MODULE, p)
    summary_path = tmp_path / "summary.json"
    env = {
        "MPC_STIMULUS": str(stimulus),
        "MPC_SIM_RESULT": str(summary_path),
        "MPC_SERIAL_PARAMETERS": json.dumps(p),
        "MPC_SERIAL_FAULTS": "1" if faults else "0",
        **STALL_ENV,
    }
    result = run_cocotb(
        [top, *SERIAL_SOURCES], serial.MODULE, "test_serial_top", tmp_path / "build", parameters=p, extra_env=env
    )
    return result, json.loads(summary_path.read_text())


@pytest.mark.parametrize("case", TOYS)
def test_serial_top_on_toy_designs(tmp_path, case):
    result, summary = run_toy(tmp_path, case)
    _assert_passed(result)
    p = TOYS[case]
    assert summary["mismatches"] == 0 and summary["first_mismatches"] == [], summary
    assert summary["bytes_in"] == p["N_IN"] * ((p["IN_BITS"] + 7) // 8)
    assert summary["bytes_out"] == 1 + p["N_CLASSES"] * ((p["LOGIT_BITS"] + 7) // 8)
    # The line sets the pace: with the window full, a vector every bytes_in (or, where replies
    # are longer, bytes_out) byte times.
    byte = 10 * p["CLKS_PER_BIT"]
    assert summary["cycles_per_vector"] >= max(summary["bytes_in"], summary["bytes_out"]) * byte, summary
    # A host ignoring the window outruns the replies (wide_in_fifo1) or the design (narrow_in_fifo2).
    faults = summary["faults"]
    assert faults["dropped"] > 0 and faults["replies"] > 0, faults


def test_serial_bench_reports_a_wrong_expectation(tmp_path):
    """The bench must fail, and name the sample, when one expected logit is off by one."""
    result, summary = run_toy(tmp_path, "narrow_in_fifo2", faults=False, corrupt=True)
    assert result["failed"] == 1
    assert summary["mismatches"] == 2  # sample 1 in the streamed and the replayed phase
    first = summary["first_mismatches"][0]
    assert first["sample"] == 1 and first["phase"] == "stream"
    assert first["expected"]["logits"][0] == first["got"]["logits"][0] + 1


@pytest.mark.parametrize(
    "widths",
    [
        dict(N_IN=4, IN_BITS=16, N_CLASSES=3, LOGIT_BITS=24, CLASS_BITS=2),  # whole bytes everywhere
        dict(N_IN=2, IN_BITS=8, N_CLASSES=130, LOGIT_BITS=9, CLASS_BITS=8),  # an 8-bit class
        dict(N_IN=7, IN_BITS=3, N_CLASSES=1, LOGIT_BITS=5, CLASS_BITS=1),  # one output
    ],
    ids=["whole_bytes", "class_byte", "one_output"],
)
def test_serial_top_lints_across_widths(tmp_path, widths):
    names = ("N_IN", "IN_BITS", "N_CLASSES", "LOGIT_BITS", "CLASS_BITS")
    top = toy_design(tmp_path / "mpc_top.v", *(widths[k] for k in names))
    for fifo in (1, 2):
        lint_verilator([top, *SERIAL_SOURCES], serial.MODULE, dict(widths, FIFO_VECTORS=fifo))


# ------------------------------------------------------------------------ the demo
@pytest.fixture(scope="module")
def demo_build(tmp_path_factory, digits_model, digits_npz):
    out = tmp_path_factory.mktemp("serial") / "demo"
    api.compile(digits_model, digits_npz, out, synth_timeout=None, log=lambda *a: None, progress=False)
    return out


def test_design_json_describes_the_serial_top(demo_build):
    design = json.loads((demo_build / "rtl" / "design.json").read_text())
    entry = design["serial_top"]
    assert entry["module"] == "mpc_serial_top" and entry["pins"] == ["clk", "rx", "tx", "busy", "error"]
    assert entry["sources"] == design["sources"] + ["uart_rx.v", "uart_tx.v", "serial_top.v"]
    assert all((demo_build / "rtl" / s).is_file() for s in entry["sources"])
    assert entry["parameters"] == {
        "N_IN": 64,
        "IN_BITS": 8,
        "N_CLASSES": 10,
        "LOGIT_BITS": design["logit_bits"],
        "CLASS_BITS": 4,
        "CLKS_PER_BIT": 104,
        "FIFO_VECTORS": 2,
        "IDLE_BITS": 2048,
    }
    assert entry["bytes_in"] == 64 and entry["bytes_out"] == 1 + 10 * ((design["logit_bits"] + 7) // 8)
    assert entry["clks_per_bit"] == 104 and entry["baud_at_12mhz"] == 115385
    # files.f and the design's own top are untouched
    assert (demo_build / "rtl" / "files.f").read_text().split() == design["sources"]
    lint_verilator([demo_build / "rtl" / s for s in entry["sources"]], entry["module"], entry["parameters"])


def test_demo_simulates_bit_exact_through_the_serial_top(demo_build):
    report = (demo_build / "report.json").read_bytes()
    result = api.simulate(demo_build, samples=4, serial=True, log=lambda *a: None)
    assert result["mismatches"] == 0 and result["first_mismatches"] == [] and result["error"] is None, result
    assert result["clks_per_bit"] == 8 and result["window"] == 2
    # At 8 clocks per bit a vector's 64 bytes take 5120 cycles: the line sets the pace.
    assert result["cycles_per_vector"] == pytest.approx(64 * 80)
    assert result["latency_first_vector"] > (64 + result["bytes_out"]) * 80
    assert json.loads((demo_build / "sim_serial.json").read_text()) == result
    assert (demo_build / "report.json").read_bytes() == report  # the report's figures are the stream bench's
    manifest = json.loads((demo_build / ".mpc-build.json").read_text())
    assert "sim_serial.json" in manifest["files"] and "sim_build/serial_icarus" in manifest["folders"]


def test_cli_simulate_serial(demo_build, capsys):
    assert main(["simulate", str(demo_build), "--serial", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "serial top, 2 samples, 0 mismatches" in out and "sim_serial.json" in out


def test_simulate_serial_names_a_damaged_entry(demo_build, tmp_path):
    copy = tmp_path / "damaged"
    shutil.copytree(demo_build, copy)
    design = json.loads((copy / "rtl" / "design.json").read_text())
    design["serial_top"]["sources"][-1] = "../serial_top.v"
    (copy / "rtl" / "design.json").write_text(json.dumps(design))
    with pytest.raises(api.MpcError, match=r"design\.json: damaged.*serial_top\.sources"):
        api.simulate(copy, samples=1, serial=True, log=lambda *a: None)


def test_simulate_serial_refuses_a_build_without_the_entry(demo_build, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(demo_build, copy)
    design = json.loads((copy / "rtl" / "design.json").read_text())
    del design["serial_top"]
    (copy / "rtl" / "design.json").write_text(json.dumps(design))
    with pytest.raises(api.MpcError, match="no 'serial_top'.*recompile"):
        api.simulate(copy, samples=1, serial=True, log=lambda *a: None)


# ------------------------------------------------------------------------ yosys
def test_serial_top_synthesizes_for_ice40_without_latches(tmp_path):
    """The wrapper around a black-box design of the demo's widths: no latches, the input
    buffer in one block RAM, no warning (initial values, port widths), a small cell count."""
    if shutil.which("yosys") is None:
        pytest.skip("yosys not found: install it (apt-get install yosys) to check synthesis")
    p = dict(N_IN=64, IN_BITS=8, N_CLASSES=10, LOGIT_BITS=17, CLASS_BITS=4)
    stub = tmp_path / "mpc_top_stub.v"
    stub.write_text(
        "(* blackbox *)\nmodule mpc_top(input wire clk, input wire rst, input wire in_valid, output wire in_ready,\n"
        "  input wire signed [7:0] in_data, output wire out_valid, input wire out_ready,\n"
        "  output wire [169:0] out_logits, output wire [3:0] out_argmax, output wire fault);\nendmodule\n"
    )
    chparams = " ".join(f"-set {k} {v}" for k, v in p.items())
    files = " ".join(str(s) for s in [stub, *SERIAL_SOURCES])
    script = f"read_verilog {files}; chparam {chparams} {serial.MODULE}; synth_ice40 -top {serial.MODULE}; stat"
    log = tmp_path / "yosys.log"
    proc = subprocess.run(["yosys", "-q", "-l", str(log), "-p", script], cwd=tmp_path, capture_output=True, text=True)
    text = log.read_text() if log.exists() else ""
    assert proc.returncode == 0, f"yosys failed: {proc.stderr.strip() or text[-2000:]}"
    assert latch_report(text) == []
    assert not re.search(r"^warning", text, flags=re.M | re.I), re.findall(r"^warning.*$", text, flags=re.M | re.I)
    stats = text[text.rfind("Printing statistics") :]
    assert re.search(r"SB_RAM40_4K\s+1\b", stats), "the input buffer is not one block RAM"
    cells = int(re.search(r"Number of cells:\s+(\d+)", stats).group(1))
    assert cells < 1000, f"{cells} cells for the wrapper"
