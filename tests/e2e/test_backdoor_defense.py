"""Issue #15's done-when on real data: a BadNets-poisoned LeNet-5 (MNIST from ../shared/data,
10% of its training rows stamped with a 3x3 patch and relabelled to class 0) has an attack
success rate of at least 95%; the fine_prune pass, with its defaults and the defender's clean
data, compiles it to an integer model with an ASR of at most 5% and a clean accuracy at most 1
point below the poisoned model's, identical in model.int.onnx and bit-exact in simulation."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (SHARED / "mnist").exists(), reason=f"no MNIST under {SHARED}")]


def test_fine_pruning_removes_a_badnets_backdoor_from_the_compiled_lenet5(tmp_path):
    from benchmarks.backdoor import lenet5_case, run_defense

    case = lenet5_case(tmp_path, SHARED, quick=False)
    row = run_defense(case, "fine-pruning", tmp_path, simulate=8)
    poisoned, compiled = row["poisoned"], row["compiled"]
    assert poisoned["attack_success_rate"] >= 0.95
    assert compiled["attack_success_rate"] <= 0.05
    assert compiled["clean_accuracy"] >= poisoned["clean_accuracy"] - 0.01
    assert row["onnx_matches_golden"] and row["sim_mismatches"] == 0
    pruned = row["fine_prune"]["pruned"]
    assert pruned and row["fine_prune"]["layer"] == "/3/Conv"  # the last convolution, as in the paper
