"""The Pareto set against a hand-made table."""

from compiler.explore.pareto import dominates, pareto_mask

# accuracy (max), LUTs (min), energy (min); worked out by hand below
TABLE = [
    ("a", 0.95, 4000, 900.0),  # the most accurate: in the set
    ("b", 0.90, 3000, 700.0),  # in the set: cheaper than a, less accurate
    ("c", 0.90, 3500, 800.0),  # dominated by b (same accuracy, more LUTs and energy)
    ("d", 0.80, 1000, 300.0),  # the cheapest: in the set
    ("e", 0.80, 1000, 300.0),  # equal to d on every objective: neither dominates, both in the set
    ("f", 0.79, 1000, 300.0),  # dominated by d (less accurate, the same cost)
    ("g", 0.85, 5000, 200.0),  # the least energy: in the set
    ("h", None, 100, 10.0),  # a failed build: never in the set, dominates nothing
    ("i", 0.94, 4000, 950.0),  # dominated by a
]
SIGNS = [+1, -1, -1]
EXPECTED = {"a", "b", "d", "e", "g"}


def test_pareto_set_of_the_hand_made_table():
    mask = pareto_mask([row[1:] for row in TABLE], SIGNS)
    assert {row[0] for row, m in zip(TABLE, mask) if m} == EXPECTED


def test_dominance():
    assert dominates([1, 1], [1, 0]) and not dominates([1, 0], [1, 1])
    assert not dominates([1, 1], [1, 1])  # equal: no
    assert not dominates([2, 0], [1, 1])  # better on one, worse on the other: no


def test_one_objective_and_edge_cases():
    assert pareto_mask([[3.0], [5.0], [5.0], [None]], [+1]) == [False, True, True, False]
    assert pareto_mask([[3.0], [5.0]], [-1]) == [True, False]
    assert pareto_mask([], [+1, -1]) == []
    assert pareto_mask([[None, 1.0]], [+1, -1]) == [False]
