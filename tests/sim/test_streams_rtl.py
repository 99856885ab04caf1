"""sim/streams.py's expect_no_output waits on out_valid instead of visiting every cycle: it
must catch exactly the beats a cycle-by-cycle check after each falling edge would (a beat
presented DELAY edges after reset is inside a window of DELAY + 1 cycles, not of DELAY) and end
after the same falling edge (sim/test_streams.py on tests/sim/late_beat.v)."""

import json
from pathlib import Path

import pytest

from sim.runner import run_cocotb
from sim.streams import CLOCK_NS

FIXTURE = Path(__file__).resolve().parent / "late_beat.v"
DELAY = 7


def _window(tmp_path: Path, cycles: int) -> dict:
    result = tmp_path / f"window_{cycles}.json"
    run_cocotb(
        [FIXTURE], "late_beat", "test_streams", tmp_path / "build", parameters={"DELAY": DELAY},
        extra_env={"MPC_NO_OUTPUT_CYCLES": str(cycles), "MPC_SIM_RESULT": str(result)},
        work_dir=tmp_path / f"run_{cycles}", reuse_build=True,
    )  # fmt: skip
    return json.loads(result.read_text())


@pytest.mark.parametrize("cycles, caught", [(1, False), (DELAY, False), (DELAY + 1, True), (40, True)])
def test_expect_no_output_catches_a_beat_exactly_inside_its_window(tmp_path, cycles, caught):
    window = _window(tmp_path, cycles)
    assert window["caught"] == caught
    if not caught:  # ends after the falling edge a loop over the cycles would end after
        assert window["end_ns"] - window["start_ns"] == cycles * CLOCK_NS
