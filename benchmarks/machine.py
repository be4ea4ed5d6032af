"""Machine information and a calibration workload, recorded with every benchmark run."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import sys
import time

import numpy as np

_PACKAGES = ("dynaplan", "numpy", "scipy", "pandas", "pydantic", "pyomo", "highspy", "ortools", "pulp", "matplotlib")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def _highs_version() -> str | None:
    try:
        import highspy

        h = getattr(getattr(highspy, "_core", None), "_Highs", highspy.Highs)()
        return f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"
    except Exception:  # noqa: BLE001 - informational only
        return None


def _cbc_version() -> str | None:
    try:
        import pulp

        solver = pulp.PULP_CBC_CMD(msg=False)
        return f"CBC bundled with PuLP {pulp.__version__}" if solver.available() else None
    except Exception:  # noqa: BLE001
        return None


def machine_info() -> dict:
    """Platform, CPU, cores, Python and solver versions, load average."""
    info = {
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": sys.version.split()[0],
        "highs": _highs_version(),
        "cbc": _cbc_version(),
    }
    for pkg in _PACKAGES:
        info[pkg] = _version(pkg)
    if hasattr(os, "getloadavg"):
        info["loadavg_1m_start"] = round(os.getloadavg()[0], 2)
    return info


def _calibration_workload() -> float:
    """A fixed CPU workload (pure Python + numpy), independent of dynaplan: ~10 ms on a 2020s core."""
    acc = 0
    for i in range(60_000):
        acc += i * i % 7
    rng = np.random.default_rng(0)
    a = rng.random(150_000)
    np.sort(a)
    return float(acc)


def calibrate(repeats: int = 15) -> dict:
    """Median and p95 (ms) of the calibration workload: a machine-speed unit measured in the same
    run as the benchmarks, so timings can be read as multiples of it, and its spread a noise gauge."""
    times = []
    _calibration_workload()
    for _ in range(repeats):
        t0 = time.perf_counter()
        _calibration_workload()
        times.append(time.perf_counter() - t0)
    return {"calib_median_ms": statistics.median(times) * 1e3,
            "calib_p95_ms": float(np.percentile(times, 95)) * 1e3}
