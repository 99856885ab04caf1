"""compiler/parallel.py: map_tasks returns results in call order, reports progress per call, and
re-raises a failed call's own exception (the serial pool: Ray's is exercised by the audit and
explore tests with --workers)."""

import pytest

from compiler.parallel import SerialPool, map_tasks, task_pool


def _scaled(factor, x, y):
    return factor * (x + y)


def test_results_come_back_in_call_order_with_shared_arguments_first():
    done = []
    out = map_tasks(_scaled, [(1, 2), (3, 4), (5, 6)], shared=(10,), on_done=done.append)
    assert out == [30, 70, 110]
    assert sorted(done) == [0, 1, 2]


def test_a_failing_call_raises_its_own_exception():
    def fail(x):
        if x == 2:
            raise KeyError("task 2")
        return x

    with pytest.raises(KeyError, match="task 2"):
        map_tasks(fail, [(1,), (2,), (3,)])


def test_one_local_worker_is_the_serial_pool():
    with task_pool(1) as pool:
        assert isinstance(pool, SerialPool)
        pool.submit("k", _scaled, 2, 1, 1)
        assert pool.wait() == ("k", 4)
        assert len(pool) == 0
