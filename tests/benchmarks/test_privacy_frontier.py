"""benchmarks/privacy_frontier.py's bookkeeping: the Pareto front, the best point per accuracy
floor and the seed claim's differences, on hand-made rows (the sweep itself is a benchmark)."""

import math

from benchmarks.privacy_frontier import best_at_levels, claim_lines, mark_pareto, points


def _row(label, family, acc, tpr, attack_acc=0.6, plain_attack_acc=None):
    lira = {"tpr_at_1pct_fpr": tpr, "auc": 0.7, "balanced_accuracy": attack_acc}
    plain = dict(lira, balanced_accuracy=plain_attack_acc if plain_attack_acc is not None else attack_acc)
    return {"label": label, "family": family, "test_accuracy": acc, "adaptive": {"lira_online": lira},
            "plain": {"lira_online": plain}}  # fmt: skip


def test_pareto_front_keeps_the_undominated_points():
    rows = [
        _row("a", "PTQ", 0.90, 0.50),
        _row("b", "PTQ", 0.85, 0.20),
        _row("c", "ADMM", 0.80, 0.30),  # worse than b on both axes
        _row("d", "dp_sgd", 0.60, 0.01),
        _row("e", "minmax", 0.85, 0.20),  # ties b: neither dominates
    ]
    mark_pareto(rows)
    assert [r["label"] for r in rows if r["pareto"]] == ["a", "b", "d", "e"]


def test_best_point_at_each_accuracy_floor():
    rows = [_row("a", "PTQ", 0.90, 0.50), _row("b", "ADMM", 0.88, 0.30), _row("c", "dp_sgd", 0.70, 0.02)]
    levels = best_at_levels(rows, 0.90)
    assert [best["label"] for _, best in levels] == ["a", "b", "c", "c"]  # floors 89.1%, 81%, 67.5%, 54%
    assert math.isclose(levels[0][0], 0.891)


def test_seed_claim_is_the_attack_accuracy_difference_in_points():
    by_label = {
        "PTQ 8-bit": _row("PTQ 8-bit", "PTQ", 0.9, 0.5, attack_acc=0.80, plain_attack_acc=0.78),
        "minmax λ=3": _row("minmax λ=3", "minmax", 0.8, 0.2, attack_acc=0.70, plain_attack_acc=0.65),
        "privacy_admm 80% λ=3": _row("privacy_admm 80% λ=3", "privacy_admm", 0.8, 0.1, attack_acc=0.66),
    }
    (line,) = [x for x in claim_lines(by_label) if x.startswith("- ")]  # against Min-Max at the same λ
    assert "plain: -12.0 vs baseline, +1.0 vs Min-Max" in line
    assert "adaptive: -14.0 vs baseline, -4.0 vs Min-Max" in line


def test_every_sweep_the_issue_names_is_in_the_benchmark():
    families = {p.family for p in points()}
    assert families == {"PTQ", "ADMM", "privacy_admm", "minmax", "dp_sgd", "mia_quant"}
    assert {p.recipe["dp_sgd"]["epsilon"] for p in points() if p.family == "dp_sgd"} == {1.0, 4.0, 16.0, math.inf}
