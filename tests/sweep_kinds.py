"""A scenario kind for the sweep engine's tests: cheap, deterministic and able to misbehave on cue.

``probe`` computes ``y = table[x] + offset`` from a shared table (loaded once per key; the loads
are counted) and, by option, sleeps, raises, raises KeyboardInterrupt, or kills the process it
runs in (once, marked by a file, or always). Registered on import.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from pydantic import Field

from dynaplan.sweep.kinds import ScenarioKind, loader, register
from dynaplan.validation import InputModel

LOADS: list[tuple] = []


class ProbeScenario(InputModel):
    x: int = Field(0, ge=0, lt=1000)
    offset: float = 0.0
    sleep_s: float = Field(0.0, ge=0)
    fail: bool = False  # raise ValueError
    interrupt: bool = False  # raise KeyboardInterrupt
    die: str | None = None  # "once:<marker file>" or "always": os._exit in the running process
    table_size: int = Field(1000, ge=1000)


@loader("probe_table")
def _table(n: int):
    LOADS.append(("probe_table", n))
    return np.arange(n, dtype=float) ** 2


def run_probe(o: dict, shared) -> dict:
    if o["sleep_s"]:
        time.sleep(o["sleep_s"])
    if o["fail"]:
        raise ValueError(f"probe x={o['x']} asked to fail\nsecond line")
    if o["interrupt"]:
        raise KeyboardInterrupt
    if o["die"] == "always":
        os._exit(7)
    if o["die"] and o["die"].startswith("once:"):
        marker = Path(o["die"][5:])
        if not marker.exists():
            marker.write_text("died")
            os._exit(7)
    return {"y": float(shared["table"][o["x"]] + o["offset"]), "pid": os.getpid()}


PROBE = register(ScenarioKind(name="probe", options=ProbeScenario, metrics={"y": "float", "pid": "int"},
                              run=run_probe, shared=lambda o: {"table": ("probe_table", o["table_size"])},
                              description="test kind"))
