"""Independent tasks (explore's points, the audit's shadow models) in this process or as Ray tasks.

`task_pool(workers, address)` gives a pool with one interface whatever runs the tasks:

- `workers == 1` and no address: a serial pool; each task runs in this process when its result is
  asked for (no Ray started, nothing imported).
- otherwise Ray: a local instance of `workers` CPUs started quietly for the block (no dashboard,
  workers' output not forwarded, `address="local"` so a cluster someone else started on this
  machine is never joined by accident), or, with `address`, the existing cluster there, with at
  most `workers` tasks in flight (default: the cluster's CPUs).

Either way the same function runs with the same arguments, so results do not depend on the pool:
callers derive every seed from the task, never from the order tasks finish in. Each Ray task takes
one CPU (Ray then sets OMP_NUM_THREADS=1 in its worker); the task functions themselves run torch on
one thread. A task that raises, or whose worker dies, ends `wait()` with `TaskFailed` naming the
task's key; what is still in flight is cancelled when the block ends (Ctrl-C included).

Only the standard library here; Ray is imported when a Ray pool starts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, cast

from compiler.errors import MpcError

LOCAL_OBJECT_STORE_BYTES = 512 * 1024 * 1024  # models, pools and builds' records are small


class TaskFailed(Exception):
    """A task raised (`cause` is its exception) or its worker died (`cause` says how)."""

    def __init__(self, key: Hashable, cause: BaseException):
        super().__init__(f"{key}: {type(cause).__name__}: {cause}")
        self.key = key
        self.cause = cause


class ParallelError(MpcError, RuntimeError):
    """Ray cannot be started or reached; the message is one line that says why."""


class SerialPool:
    """Tasks run one by one in this process, when `wait` asks for the next result."""

    def __init__(self) -> None:
        self.capacity = 1
        self._queue: list[tuple[Hashable, Callable, tuple]] = []

    def put(self, obj: Any) -> Any:
        return obj

    def submit(self, key: Hashable, fn: Callable, *args: Any) -> None:
        self._queue.append((key, fn, args))

    def __len__(self) -> int:
        return len(self._queue)

    def wait(self) -> tuple[Hashable, Any]:
        key, fn, args = self._queue.pop(0)
        try:
            return key, fn(*args)
        except Exception as e:
            raise TaskFailed(key, e) from e


class RayPool:
    """Tasks as Ray tasks of one CPU each; `capacity` of them in flight is what callers keep."""

    def __init__(self, ray: Any, capacity: int) -> None:
        self.ray = ray
        self.capacity = capacity
        self._remote: dict[Callable, Any] = {}
        self._pending: dict[Any, Hashable] = {}  # ObjectRef -> key

    def put(self, obj: Any) -> Any:
        """Store a large argument shared by many tasks once (tasks receive the object itself)."""
        return self.ray.put(obj)

    def submit(self, key: Hashable, fn: Callable, *args: Any) -> None:
        if fn not in self._remote:  # no retries: a task that crashed a worker is reported, not rerun
            self._remote[fn] = self.ray.remote(num_cpus=1, max_retries=0)(fn)
        self._pending[self._remote[fn].remote(*args)] = key

    def __len__(self) -> int:
        return len(self._pending)

    def wait(self) -> tuple[Hashable, Any]:
        [ref], _ = self.ray.wait(list(self._pending), num_returns=1)
        key = self._pending.pop(ref)
        try:
            return key, self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as e:  # the task raised: hand back its own exception
            raise TaskFailed(key, e.cause if isinstance(e.cause, BaseException) else e) from None
        except self.ray.exceptions.RayError as e:  # its worker died (killed, out of memory)
            raise TaskFailed(key, e) from None

    def cancel_all(self) -> None:
        for ref in self._pending:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        self._pending.clear()


Pool = SerialPool | RayPool


@contextlib.contextmanager
def task_pool(workers: int | None = 1, address: str | None = None) -> Iterator[Pool]:
    """A pool for the block (see the module docstring); `workers=None`: 1 locally, the cluster's
    CPUs with an address."""
    if address is None and (workers or 1) == 1:
        yield SerialPool()
        return
    try:
        import ray
    except ImportError:
        raise ParallelError("Ray is not installed (pip install 'ray>=2.9'); or run with --workers 1") from None
    if ray.is_initialized():  # an embedding program's own Ray session: use it, leave it running
        pool = RayPool(ray, workers or _cluster_cpus(ray))
        try:
            yield pool
        finally:
            pool.cancel_all()
        return
    try:
        if address is None:
            ray.init(
                address="local",
                num_cpus=workers,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            )
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as e:  # ConnectionError, ValueError, RuntimeError: Ray's own words, on one line
        where = f"the Ray cluster at {address}" if address else f"a local Ray instance of {workers} CPUs"
        message = " ".join(str(e).split())
        raise ParallelError(f"cannot start or join {where}: {message[:300]}") from None
    pool = RayPool(ray, workers or _cluster_cpus(ray))
    try:
        yield pool
    finally:
        pool.cancel_all()
        ray.shutdown()


def _cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def map_tasks(
    fn: Callable,
    calls: Sequence[tuple],
    shared: tuple = (),
    workers: int | None = 1,
    address: str | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[Any]:
    """[fn(*shared, *call) for call in calls], run on a pool; `shared` arguments are stored once.
    `on_done(i)` is called as each call finishes (progress). A failed call raises its exception."""
    results: list[Any] = [None] * len(calls)
    with task_pool(workers, address) as pool:
        common = tuple(pool.put(s) for s in shared)
        queue = list(enumerate(calls))
        while queue or len(pool):
            while queue and len(pool) < pool.capacity:
                i, call = queue.pop(0)
                pool.submit(i, fn, *common, *call)
            try:
                key, result = pool.wait()
            except TaskFailed as e:
                raise e.cause from None
            results[cast(int, key)] = result
            if on_done is not None:
                on_done(cast(int, key))
    return results
