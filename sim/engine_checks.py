"""Scoreboard checks shared by the engine testbenches (dense, sparse, circulant)."""

import numpy as np

from kernels.dense_mac import RomSchedule


def out_width(params) -> int:
    """An engine's out_data width: requantized activations or raw accumulators."""
    return params["OUT_BITS"] if params["REQUANT"] else params["ACC_BITS"]


def read_signed_out(dut) -> int | None:
    """out_data as a signed integer; None when it holds X/Z (an engine fed a detected-corrupt ROM
    word may compute with undefined values: check_values reports a None as a mismatch)."""
    value = dut.out_data.value
    return value.to_signed() if value.is_resolvable else None


def check_values(beats, expected) -> None:
    """Every (edge, value) beat against the kernels' array in stream order, bit for bit
    ([vectors, outputs] for dense engines, [frames, y, x, c] for convolutions)."""
    got = [value for _, value in beats]
    want = [int(v) for v in expected.ravel()]
    assert len(got) == len(want), f"{len(got)} outputs, expected {len(want)}"
    bad = [
        (tuple(int(i) for i in np.unravel_index(k, expected.shape)), w, g)
        for k, (w, g) in enumerate(zip(want, got))
        if w != g
    ]
    assert not bad, f"{len(bad)}/{len(want)} outputs differ ((index), expected, got), first: {bad[:5]}"


def check_row_timing(accepted, out_edges, schedule: RomSchedule) -> None:
    """Replay the schedule of the ROM-streaming engines (rtl/dense_mac.v, rtl/sparse_mac.v;
    kernels.dense_mac.RomSchedule): one ROM word per edge, row o ends after S_o words (dense:
    S_o = (o+1)*NCH), output o completes PIPELINE_EDGES after, inputs double-buffered. Every edge
    is compared, then the schedule's idle latency and steady-state interval."""
    n_in, n_out, rounds = schedule.n_in, schedule.n_out, schedule.words
    starts: list[int] = []  # compute start edge of each vector
    for v in range(len(accepted) // n_in):
        first, last = accepted[v * n_in], accepted[(v + 1) * n_in - 1]
        assert last - first == n_in - 1, f"vector {v}: inputs not accepted back to back"
        if v >= 1:  # right after the previous vector, once vector v-2's buffer has been read
            want_first = accepted[v * n_in - 1] + 1
            if v >= 2:
                want_first = max(want_first, starts[v - 2] + rounds)
            assert first == want_first, f"vector {v}: first input at {first}, model {want_first}"
        starts.append(max(last + 1, starts[-1] + rounds) if starts else last + 1)
        got = out_edges[v * n_out : (v + 1) * n_out]
        want = schedule.output_edges(starts[v])
        assert got == want, f"vector {v}: output edges {got}, model {want}"
    assert out_edges[n_out - 1] - accepted[0] == schedule.latency
    vectors = len(accepted) // n_in
    if vectors >= 4:
        last_outs = [out_edges[(v + 1) * n_out - 1] for v in range(vectors)]
        assert last_outs[-1] - last_outs[-2] == schedule.interval, (
            f"steady-state interval {last_outs[-1] - last_outs[-2]}, model {schedule.interval}"
        )


# ------------------------------------------------------------------------ protected ROMs
# Flips already applied in this simulation: the ROM arrays keep them from one cocotb test to the
# next (every test resets the engine, which clears `fault`, not the ROMs).
_APPLIED_FLIPS: set[tuple[str, int, tuple[int, ...]]] = set()


# Where each engine keeps a ROM's array: the memory of an rtl/rom_port.v instance ("rom"), at
# the first of these instance paths the DUT has.
_ROM_INSTANCES = {
    "w_rom": ("u_w_rom",),
    "b_rom": ("u_b_rom", "u_output.u_b_rom"),  # circulant_mac: in its rtl/circulant_output.v
    "c_rom": ("u_c_rom",),
    "tw_rom": ("u_butterfly.u_tw_rom",),  # circulant_mac: in its rtl/circulant_butterfly.v
}


def rom_array(dut, rom: str):
    """The DUT's array of ROM `rom` (w_rom, b_rom, c_rom, tw_rom): one codeword per entry."""
    for path in _ROM_INSTANCES[rom]:
        handle = dut
        for name in path.split("."):
            handle = getattr(handle, name, None)
            if handle is None:
                break
        else:
            return handle.rom
    raise AssertionError(f"{dut._name} has no ROM {rom} (looked at {', '.join(_ROM_INSTANCES[rom])})")


def apply_rom_flips(dut, cfg: dict) -> None:
    """Flip bits of the DUT's ROM words as the bench config says: cfg["flips"] = [{"rom": the
    ROM's name (w_rom, b_rom, c_rom, tw_rom), "word": its index, "bits": codeword bits to
    flip}], each once per simulation. Call after reset (the $readmemh has run) and before the
    first input, so every read of the run sees the flipped codeword."""
    for flip in cfg.get("flips", []):
        bits = tuple(int(b) for b in flip["bits"])
        key = (str(flip["rom"]), int(flip["word"]), bits)
        if key in _APPLIED_FLIPS:
            continue
        entry = rom_array(dut, key[0])[key[1]]
        width = len(entry)
        assert all(0 <= b < width for b in bits), f"flip {flip}: {key[0]} words have {width} bits"
        mask = sum(1 << b for b in set(bits))
        entry.value = int(entry.value) ^ mask
        _APPLIED_FLIPS.add(key)


def expects_fault(cfg: dict) -> bool:
    """cfg["expect_fault"]: the run must end with `fault` high (values are then not checked:
    a detected ROM error leaves them undefined); absent or false: `fault` must stay low."""
    return bool(cfg.get("expect_fault", False))


def check_fault(dut, cfg: dict) -> None:
    """The DUT's sticky `fault` at the end of a run against cfg["expect_fault"]."""
    value = dut.fault.value
    assert value.is_resolvable, f"fault is {value} (not 0/1)"
    want = int(expects_fault(cfg))
    assert int(value) == want, f"fault is {int(value)}, expected {want} (flips: {cfg.get('flips', [])})"
