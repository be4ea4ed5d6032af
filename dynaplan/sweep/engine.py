"""Run a sweep: every scenario not yet on disk, on Dask ``distributed`` or in this process.

    from dynaplan.sweep import run_sweep
    df = run_sweep("examples/sweep_capacity.toml", "sweep-out")             # a LocalCluster
    df = run_sweep(spec, "sweep-out", client=Client("tcp://host:8786"))     # a user's cluster

One code path for every cluster: without a ``client`` the engine starts a ``LocalCluster`` of
``workers`` single-threaded worker processes (default: the usable CPUs), or connects to
``scheduler``; ``workers=0`` runs every scenario in this process instead (no Dask), the
baseline of the tests and the benchmark. Then:

1. scenarios already on disk are skipped (``resume``; a recorded failure too, unless
   ``retry_failed``), temporaries of a killed run are deleted;
2. the shared inputs (profiles, traces, grid series) are loaded once here and sent to every
   worker once (``client.scatter(..., broadcast=True)``); tasks carry only options and futures,
   one scenario or a few short ones each, submitted as workers need them (:func:`_run_dask`);
3. each finished scenario's row is written at once (:class:`~dynaplan.sweep.store.ResultStore`),
   by this process only. A scenario that raises is a row with status ``error`` and its one-line
   error; a scenario that kills its worker is re-run by Dask elsewhere, and recorded as an
   error if it kills workers repeatedly (``KilledWorker``); the sweep goes on;
4. a ``KeyboardInterrupt`` cancels the scenarios still running, closes what the engine started
   and is raised again: every row written so far stays, and the next run resumes.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import importlib.metadata
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from dynaplan.errors import SolverError, ValidationError
from dynaplan.sweep.expand import Scenario, expand
from dynaplan.sweep.kinds import ScenarioKind, get_kind, load_shared
from dynaplan.sweep.spec import SweepSpec, as_spec
from dynaplan.sweep.store import STATUS_ERROR, STATUS_OK, ResultStore

MAX_ATTEMPTS = 3
"""Submissions of one scenario whose shared inputs were lost with their workers."""

TASK_TARGET_S = 0.5
"""Scenarios shorter than this are run a few per task, so that a task takes about this long (s)."""

MAX_CHUNK = 16
"""Most scenarios in one task."""

WORKER_WAIT_S = 120.0
"""Longest wait for a worker before the shared inputs are scattered (s): a restarting worker on a
busy machine takes seconds."""

Progress = Callable[[dict, dict], None]  # (row, counts{done, failed, remaining, skipped, total})


def _version() -> str:
    try:
        return importlib.metadata.version("dynaplan")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "unknown"


VERSION = _version()


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (a scenario's error column)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_scenario(kind: ScenarioKind, sid: str, options: dict, shared: dict[str, Any]) -> dict:
    """One scenario's row: its options, metrics (or error), status, wall time, version and worker.
    Never raises for an error of the scenario itself (an ``Exception``)."""
    t0 = time.perf_counter()
    row = {"scenario_id": sid, "kind": kind.name, **options}
    try:
        metrics = kind.run(options, shared)
        row.update(metrics)
        row["status"], row["error"] = STATUS_OK, None
    except Exception as exc:  # noqa: BLE001 - any failure of one scenario is that scenario's result
        row["status"], row["error"] = STATUS_ERROR, one_line(exc)
    row["wall_time_s"] = time.perf_counter() - t0
    row["dynaplan_version"] = VERSION
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    row["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return row


def _lost_row(kind: ScenarioKind, sc: Scenario, exc: BaseException, attempts: int = 1) -> dict:
    """The row of a scenario whose task failed outside :func:`run_scenario` (e.g. ``KilledWorker``:
    it killed the workers that ran it)."""
    tries = f" (after {attempts} submissions; the workers running it died)" if attempts > 1 else ""
    return {"scenario_id": sc.scenario_id, "kind": kind.name, **sc.options, "status": STATUS_ERROR,
            "error": one_line(exc) + tries, "dynaplan_version": VERSION,
            "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


LEAN_DASK = {
    "distributed.worker.profile.enabled": False,  # a statistical profiler sampling every thread every 10 ms
    "distributed.admin.tick.interval": "1s",  # event-loop watchdog (warns of a loop blocked for 3 s); 20 ms
    "distributed.admin.system-monitor.interval": "2s",  # the dashboard's CPU / memory / network series; 500 ms
    # the memory limit's check (pause / spill / terminate at a share of the worker's limit) stays on,
    # once a second instead of every 100 ms: on a 2-core machine it made a one-period capacity plan
    # ~9% slower in a worker than in a plain loop (8.74 vs 8.03 s for 64; 8.11 s at 1 s)
    "distributed.worker.memory.monitor-interval": "1s",
}
"""Dask settings of the LocalCluster the engine starts. Measured idle on 2 worker processes: the
driving process (scheduler, nannies) and the workers took about 120 ms of CPU per second with
Dask's defaults, 30 ms with these; a 0.1-s capacity plan pays that while it runs. Nothing a
scenario computes depends on them; the workers' memory limit is still enforced."""


def local_cluster(workers: int):
    """A ``LocalCluster`` of ``workers`` single-threaded worker processes, quiet, dashboard on a free port.

    Its workers do not get Dask's ``MALLOC_TRIM_THRESHOLD_=65536``: setting that variable turns off
    glibc's dynamic mmap threshold, so every large numpy temporary is mapped and faulted in anew,
    and a replay ran 1.5-2x slower in a worker than in this process (measured on 30-minute replays).

    Dask's diagnostics that run all the time are turned down (:data:`LEAN_DASK`): they take CPU
    from the scenarios on a small machine, where the scheduler and the workers share the cores.
    """
    import dask
    from distributed import LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)  # its INFO lines would drown the progress bar
    config = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None, **LEAN_DASK}
    with dask.config.set(config), _sigint_ignored():
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                            silence_logs=logging.ERROR)


@contextmanager
def _sigint_ignored():
    """SIGINT ignored while the LocalCluster's worker processes start, so they inherit that.

    Ctrl-C on a terminal signals the whole process group: the worker processes of a LocalCluster
    too. Each would print a traceback of its event loop and die, and the scenarios they ran would
    be lost rather than cancelled. This process alone handles the interrupt (it cancels the
    scenarios and closes the cluster); a worker restarted later ignores it through
    :class:`_IgnoreSigint`. Off the main thread (no signal handlers there) nothing changes.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _ignore_sigint_plugin():
    """A worker plugin making a LocalCluster worker ignore SIGINT (see :func:`_sigint_ignored`);
    registered workers keep it across restarts."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class _IgnoreSigint(WorkerPlugin):
        name = "dynaplan-sweep-ignore-sigint"

        def setup(self, worker) -> None:
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return _IgnoreSigint()


@contextmanager
def _dask_client(client, scheduler: str | None, workers: int | None):
    """The user's client as it is, a client of ``scheduler``, or a new LocalCluster (closed after)."""
    if client is not None:
        yield client
        return
    from distributed import Client

    if scheduler is not None:
        try:
            c = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ValidationError(f"--scheduler {scheduler}: cannot connect ({one_line(exc)})") from None
        try:
            yield c
        finally:
            c.close()
        return
    cluster = local_cluster(workers or usable_cpus())
    try:
        c = Client(cluster)
        c.register_plugin(_ignore_sigint_plugin())
        try:
            yield c
        finally:
            c.close()
    finally:
        cluster.close()


def _shared_keys(kind: ScenarioKind, todo: list[Scenario]) -> tuple[list[dict], dict[tuple, Any], dict[tuple, dict]]:
    """Per scenario, its shared and derived inputs' keys; every distinct shared key loaded once; and
    every distinct derived key with the shared inputs (names -> keys) it is derived from."""
    per, derived = [], {}
    for sc in todo:
        keys = kind.shared(sc.options)
        extra = kind.derived(sc.options) if kind.derived is not None else {}
        for k in extra.values():
            derived.setdefault(k, keys)
        per.append({**keys, **extra})
    loads = list(dict.fromkeys(k for sc_keys in per for k in sc_keys.values() if k not in derived))
    return per, {k: load_shared(k) for k in loads}, derived


def derive_input(kind: ScenarioKind, key: tuple, shared: dict[str, Any]) -> Any:
    """A derived input (:attr:`ScenarioKind.derive`), or None if deriving it fails: each scenario
    needing it then computes it itself, and fails with its own error row if that fails again."""
    try:
        return kind.derive(key, shared)
    except Exception:  # noqa: BLE001 - the scenarios report the error, each in its row
        return None


def _run_serial(kind, todo, per, loaded, derived, emit) -> None:
    made: dict[tuple, Any] = {}
    for sc, keys in zip(todo, per):
        for k in keys.values():
            if k in derived and k not in made:  # when first needed, as a worker would
                made[k] = derive_input(kind, k, {n: loaded[k2] for n, k2 in derived[k].items()})
        emit(run_scenario(kind, sc.scenario_id, sc.options, {n: made[k] if k in derived else loaded[k]
                                                               for n, k in keys.items()}))


def run_chunk(kind: ScenarioKind, items: list[tuple[str, dict, dict[str, int]]], shared: list) -> list[dict]:
    """The rows of several scenarios run one after the other in one task: ``items`` are (id,
    options, {input name: index into ``shared``}), ``shared`` the chunk's distinct shared inputs."""
    return [run_scenario(kind, sid, options, {n: shared[j] for n, j in names.items()})
            for sid, options, names in items]


def chunk_size(scenario_s: list[float], queued: int, slots: int) -> int:
    """Scenarios in the next task: enough that a task takes about :data:`TASK_TARGET_S` (from the
    median time of the scenarios finished so far; one until any has), at most
    :data:`MAX_CHUNK`, and, towards the end, at most a share of what is left, so the last tasks
    are single scenarios and no worker waits on another's long task (guided self-scheduling)."""
    if not scenario_s:
        return 1
    recent = sorted(scenario_s[-64:])
    median = max(recent[len(recent) // 2], 1e-6)
    k = min(MAX_CHUNK, max(1, int(TASK_TARGET_S / median)))
    return max(1, min(k, queued // (2 * max(1, slots))))


def _run_dask(client, kind, todo, per, loaded, derived, emit, timing: dict, max_attempts: int = MAX_ATTEMPTS) -> None:
    """Run the scenarios on the client's workers, a few tasks ahead of them; write rows as they come.

    Tasks are submitted as workers need them (about two per worker thread in flight), each of one
    scenario or, once the scenarios' own time is known, of a chunk of short scenarios
    (:func:`chunk_size`): a task costs the scheduler, the transfers and this process about 10 ms
    of CPU, which on a 2-core machine is taken from the workers (a capacity plan takes ~0.1 s).
    The scenarios and what each computes are the same whatever the chunking.

    Derived inputs (:attr:`ScenarioKind.derived`, e.g. a capacity sweep's recipes per question) are
    one task each, submitted after the scatter: each is computed once, on one worker, and Dask sends
    its result to the other workers that run scenarios needing it.

    Scattered data have no lineage: when every worker holding a copy dies, Dask forgets them and
    cancels the tasks that needed them. Their scenarios are queued again with the shared inputs
    scattered again (at most ``max_attempts`` submissions per scenario). A chunk that fails
    otherwise (``KilledWorker``: it killed the workers that ran it) is split into single-scenario
    tasks, so only a scenario that kills workers on its own is recorded as an error.
    """
    from collections import deque

    from distributed import as_completed

    keys = list(loaded)
    kidx = {k: j for j, k in enumerate(keys)}
    shared: dict[tuple, Any] = {}

    def scatter(which: list[tuple]) -> None:
        if which:
            futs = client.scatter([loaded[k] for k in which], broadcast=True, hash=False)
            shared.update(zip(which, futs))
        for k, names in derived.items():  # after the inputs they derive from; again after a loss
            shared[k] = client.submit(derive_input, kind, k, {n: shared[k2] for n, k2 in names.items()}, pure=False,
                                      key=f"sweep-derive-{len(shared)}-{os.getpid()}-{time.monotonic_ns()}")

    t0 = time.perf_counter()
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise SolverError(f"no Dask worker joined the scheduler within {WORKER_WAIT_S:g} s") from None
    scatter(keys)
    timing["scatter_s"] = time.perf_counter() - t0
    generation = 0  # how often the shared inputs were scattered again
    attempts = [0] * len(todo)
    queue = deque(range(len(todo)))
    solo: set[int] = set()  # scenarios of a failed chunk: run alone from now on
    pending: dict[Any, tuple[list[int], int]] = {}  # future -> (its scenarios, generation submitted in)
    scenario_s: list[float] = []
    slots = {"n": 1, "at": -math.inf}
    chunks: list[int] = []

    def n_slots() -> int:
        if time.monotonic() - slots["at"] > 2.0:  # a cluster may grow or shrink; ask now and then
            slots["n"], slots["at"] = max(1, sum(client.nthreads().values())), time.monotonic()
        return slots["n"]

    def submit() -> Any:
        k = chunk_size(scenario_s, len(queue), n_slots())
        idx = [queue.popleft()]
        while len(idx) < k and queue and queue[0] not in solo and idx[0] not in solo:
            idx.append(queue.popleft())
        used = list(dict.fromkeys(k2 for i in idx for k2 in per[i].values()))
        local = {k2: j for j, k2 in enumerate(used)}
        items = [(todo[i].scenario_id, todo[i].options, {n: local[k2] for n, k2 in per[i].items()}) for i in idx]
        for i in idx:
            attempts[i] += 1
        fut = client.submit(run_chunk, kind, items, [shared[k2] for k2 in used], pure=False,
                            key=f"sweep-{todo[idx[0]].scenario_id}-{len(idx)}-{os.getpid()}-{time.monotonic_ns()}")
        pending[fut] = (idx, generation)
        chunks.append(len(idx))
        return fut

    def refill(ac) -> None:
        while queue and len(pending) < 2 * n_slots():
            ac.add(submit())

    ac = as_completed()
    refill(ac)
    try:
        for fut in ac:
            idx, made_in = pending.pop(fut)
            try:
                rows = fut.result()
            except (CancelledError, asyncio.CancelledError) as exc:
                retry = [i for i in idx if per[i] and attempts[i] < max_attempts]
                if retry:  # its shared inputs died with their workers
                    try:
                        if made_in == generation:  # once per loss, not once per task
                            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
                            scatter(keys)
                            generation += 1
                        queue.extendleft(reversed(retry))
                    except (TimeoutError, OSError) as again:  # no worker came back: these scenarios are lost
                        exc, retry = again, []
                rows = [_lost_row(kind, todo[i], exc, attempts[i]) for i in idx if i not in retry]
            except Exception as exc:  # noqa: BLE001 - KilledWorker, a lost scheduler: this task failed
                if len(idx) > 1:  # find the scenario that failed it: each of them alone
                    solo.update(idx)
                    queue.extendleft(reversed(idx))
                    rows = []
                else:
                    rows = [_lost_row(kind, todo[idx[0]], exc, attempts[idx[0]])]
            for row in rows:
                if row.get("wall_time_s") is not None:
                    scenario_s.append(row["wall_time_s"])
                emit(row)
            refill(ac)
    finally:  # on an interrupt or an error of the engine: stop what is still queued or running
        if pending:
            client.cancel(list(pending), force=True)
        if shared:
            client.cancel(list(shared.values()), force=True)
        timing["tasks"] = len(chunks)


def run_sweep(spec: SweepSpec | dict | str | Path, out: str | Path, client=None, *, workers: int | None = None,
              scheduler: str | None = None, resume: bool = True, retry_failed: bool = False,
              progress: Progress | None = None) -> pd.DataFrame:
    """Run every scenario of ``spec`` not yet under ``out``; the rows of all its scenarios (spec order).

    ``client``: a ``dask.distributed.Client`` to run on (left open); else ``scheduler`` (an
    address) or a new LocalCluster of ``workers`` processes (default: usable CPUs); ``workers=0``:
    this process, no Dask. ``resume=False`` re-runs scenarios already on disk (their files are
    replaced); ``retry_failed`` re-runs only the recorded failures. ``progress(row, counts)`` is
    called after each row is written. ``df.attrs["sweep_timing_s"]`` says where the wall time went
    (prepare, load of the shared inputs, cluster start, scatter, run). See the module docstring.
    """
    t_start = time.perf_counter()
    spec = as_spec(spec)
    if workers is not None and workers < 0:
        raise ValidationError(f"--workers {workers}: expected 0 (this process) or more workers")
    if client is not None and scheduler is not None:
        raise ValidationError("client and --scheduler: give one of them, not both")
    kind = get_kind(spec.kind)
    kind.check_available()
    scenarios = expand(spec)  # every scenario validated before anything runs
    store = ResultStore(out, kind, spec.kept_metrics())
    store.clean_temporaries()
    on_disk = store.finished() if resume else {}
    todo = [sc for sc in scenarios if sc.scenario_id not in on_disk
            or (retry_failed and on_disk[sc.scenario_id] != STATUS_OK)]
    counts = {"total": len(scenarios), "skipped": len(scenarios) - len(todo), "done": 0, "failed": 0,
              "remaining": len(todo)}
    store.write_meta({"spec": spec.model_dump(mode="json"), "scenarios": len(scenarios),
                      "columns": store.schema.names, "dynaplan_version": VERSION})
    if progress is not None:
        progress({}, dict(counts))
    timing = {"prepare_s": time.perf_counter() - t_start, "load_s": 0.0, "start_s": 0.0, "scatter_s": 0.0,
              "run_s": 0.0}
    if todo:
        t0 = time.perf_counter()
        per, loaded, derived = _shared_keys(kind, todo)
        timing["load_s"] = time.perf_counter() - t0

        def emit(row: dict) -> None:
            row = {k: v for k, v in row.items() if k in store.schema.names}
            store.write(row)
            counts["done" if row["status"] == STATUS_OK else "failed"] += 1
            counts["remaining"] -= 1
            if progress is not None:
                progress(row, dict(counts))

        if workers == 0 and client is None and scheduler is None:
            t0 = time.perf_counter()
            _run_serial(kind, todo, per, loaded, derived, emit)
            timing["run_s"] = time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            with _dask_client(client, scheduler, workers) as c:
                timing["start_s"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                _run_dask(c, kind, todo, per, loaded, derived, emit, timing)
                timing["run_s"] = time.perf_counter() - t0 - timing["scatter_s"]
    df = store.read([sc.scenario_id for sc in scenarios])
    df.attrs["sweep_timing_s"] = timing  # where the time went: prepare, load, start, scatter, run (s)
    return df


__all__ = ["LEAN_DASK", "VERSION", "chunk_size", "derive_input", "local_cluster", "one_line", "run_chunk", "run_scenario", "run_sweep",
           "usable_cpus"]
