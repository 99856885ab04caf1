"""`mpc audit --workers 2` trains the shadow models as Ray tasks: the same audit.json numbers as
`--workers 1` for the same seed."""

import json
import shutil

import pytest

from compiler import api
from compiler.cli import main

QUIET = {"log": lambda *_: None, "progress": False}


@pytest.fixture(scope="module")
def small_build(tmp_path_factory, digits_model, digits_npz):
    out = tmp_path_factory.mktemp("workers") / "build"
    api.compile(digits_model, digits_npz, out, synth_timeout=None, **QUIET)
    return out


def _numbers(out) -> dict:
    audit = json.loads((out / "audit.json").read_text())
    del audit["seconds"], audit["build"]
    return audit


def test_audit_with_two_workers_gives_the_numbers_of_one(small_build, tmp_path):
    args = ["--attacks", "loss_threshold,lira", "--shadows", "4", "--shadow-epochs", "3", "--seed", "7", "--quiet"]
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"workers{workers}"
        shutil.copytree(small_build, out)
        assert main(["audit", str(out), *args, "--workers", workers]) == 0
        outs.append(out)
    one, two = map(_numbers, outs)
    assert one == two
    assert one["shadows"] == 4 and one["targets"]["compiled"]["attacks"]["lira_online"]["auc"] > 0


def test_workers_must_be_positive(small_build, capsys):
    assert main(["audit", str(small_build), "--workers", "0"]) == 2
    assert "--workers must be an integer >= 1" in capsys.readouterr().err
