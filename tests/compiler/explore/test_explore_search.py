"""compiler/explore/search.py: the grid proposer skips what was built; the budgeted search proposes
distinct, not-yet-built points, never more than its budget, and is reproducible from its seed."""

from compiler.explore.search import GridProposer, OptunaProposer
from compiler.explore.space import load_space

SPACE = """passes = ["canonicalize", "lower"]
[lower]
weight_bits = [8, 7, 6, 5, 4, 3]
activation_bits = [8, 4]
[explore]
objectives = ["accuracy", "compression"]
"""


def _space(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(SPACE)
    return load_space(path)


def _drain(proposer, values=(0.5, 2.0)):
    ids = []
    while (point := proposer.next()) is not None:
        ids.append(point.id)
        proposer.tell(point, list(values))
    return ids


def test_the_grid_proposes_every_point_not_built_yet_in_grid_order(tmp_path):
    space = _space(tmp_path)
    points = list(space.points())
    done = {points[0].id, points[3].id}
    proposer = GridProposer(points, done)
    assert proposer.total == len(points) == 12
    assert _drain(proposer) == [p.id for p in points if p.id not in done]


def test_the_search_stays_within_its_budget_and_never_repeats_a_point(tmp_path):
    space = _space(tmp_path)
    known = {next(iter(space.points())).id: [0.9, 4.0]}  # built by an earlier run: counts
    proposer = OptunaProposer(space, budget=5, known=dict(known), seed=3)
    ids = _drain(proposer)
    assert len(ids) == 4 and len(set(ids)) == 4
    assert not set(ids) & set(known)


def test_the_same_seed_proposes_the_same_points(tmp_path):
    space = _space(tmp_path)
    first = _drain(OptunaProposer(space, budget=6, known={}, seed=7))
    again = _drain(OptunaProposer(space, budget=6, known={}, seed=7))
    assert first == again


def test_a_failed_point_still_counts_against_the_budget(tmp_path):
    space = _space(tmp_path)
    proposer = OptunaProposer(space, budget=3, known={}, seed=0)
    ids = []
    while (point := proposer.next()) is not None:
        ids.append(point.id)
        proposer.tell(point, None)
    assert len(ids) == 3
