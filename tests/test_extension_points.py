"""Adding a backend and a formulation as a newcomer would, counting the files touched.

A copy of the package (``dynaplan/``, ``formulations/`` and ``tests/``) gets exactly the
edits ``docs/architecture.md`` ("Extension points") lists: a toy solver backend (a
``scipy.optimize.milp`` wrapper) and a toy formulation (the monolithic network priced by server
cost). The files that differ from the original are counted and must be the ones the document
names; then, in a fresh interpreter on the copy,

* the toy backend is listed by ``backends()``, plans the hierarchy and the monolithic MILP
  through the solver layer (shared verification, fresh-solve sessions: it declares no
  features), and its plans pass ``check_plan`` with the HiGHS plans' power; the cross-backend
  tests of ``tests/test_solver_backends.py`` run it without being edited;
* the toy formulation is built, solved and read back through the registry, its plan serves
  the forecast at no more server cost than the energy-optimal plan, and its document passes
  the label contract of ``tests/test_contracts.py``.

If the recipe stops working (an anchor line moved, a new place that must list backends or
formulations), this test says so, and the document must change with it.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"

TOY_BACKEND = '''"""A toy backend: scipy.optimize.milp behind the SolverBackend contract."""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from dynaplan.solvers.result import Backend, Solution, SolveReport, Status, StopReason, relative_gap


class ToyBackend:
    name = Backend.TOY
    features = frozenset()  # no in-place bound updates, no hints: the solver layer falls back

    def solve(self, arrays, opts, hint=None):
        t0 = time.perf_counter()
        cons = [LinearConstraint(arrays.A, arrays.row_lo, arrays.row_hi)] if arrays.n_rows else []
        res = milp(arrays.cost, integrality=arrays.integer.astype(int), bounds=Bounds(arrays.lb, arrays.ub),
                   constraints=cons, options={"time_limit": opts.time_limit_s, "mip_rel_gap": opts.mip_rel_gap})
        seconds = time.perf_counter() - t0
        x = None if res.x is None else np.asarray(res.x, dtype=float)
        if x is None:
            status, why = ((Status.INFEASIBLE, StopReason.INFEASIBLE) if res.status == 2
                           else (Status.ERROR, StopReason.BACKEND_ERROR))
            return Solution(x=None, report=SolveReport(status=status, backend=self.name, objective=None, bound=None,
                                                       gap=None, solve_time_s=seconds, stop_reason=why,
                                                       message=res.message))
        obj = float(res.fun) + arrays.offset
        dual = getattr(res, "mip_dual_bound", None)
        bound = obj if dual is None or not arrays.integer.any() else float(dual) + arrays.offset
        done = res.status == 0
        return Solution(x=x, report=SolveReport(
            status=Status.OPTIMAL if done else Status.FEASIBLE, backend=self.name, objective=obj, bound=bound,
            gap=relative_gap(obj, bound), solve_time_s=seconds, n_vars=arrays.n_cols, n_cons=arrays.n_rows,
            stop_reason=StopReason.CONVERGED if done else StopReason.TIME_LIMIT, message=res.message))
'''

TOY_FORMULATION = '''"""Cheapest servers (a toy): every pool in one MILP, priced by server cost alone.

Equations: ``formulations/cheapest.md`` -- the monolithic network (``monolithic.md``) with the
objective of :mod:`.objective` at ``ObjectiveWeights(energy=0, server_cost=1)``.
"""

from __future__ import annotations

import numpy as np

from dynaplan.formulations import network as nw
from dynaplan.formulations.objective import ObjectiveWeights, define_objective

SERVER_COST = ObjectiveWeights(energy=0.0, server_cost=1.0)


def build(ops, segments, routes, demand_rps, inventory, hardware, pools, unserved_penalty=None):
    net = nw.build_network(ops, segments, routes, demand_rps, hardware, pools=pools)
    ub = np.array([inventory.get(h, 0) for h in net.hw_pools["hardware"]], dtype=float)
    m, blocks = nw.build_pool_network_model("cheapest", net, ub, inventory, unserved_penalty)
    blocks["load_shift"] = define_objective(m, net, SERVER_COST, unserved_penalty)
    return m, net, blocks
'''

TOY_DOC = '''# Cheapest-servers formulation (a toy)

Code: `dynaplan/formulations/cheapest.py`. Notation as in `monolithic.md`.

The monolithic network, priced by the server-hour price alone:

* **(demand)** `sum_{p in R_c} sum_k z_{p,k,c} (+ u_c) >= L_c` for every class;
* **(utilisation)**, **(capacity)**, **(piece_floor)** and **(packing)** per pool, as in `pool.md`;
* **(inventory)** `sum_p y_{p,h} <= S_h` for every hardware type;
* objective: `min sum_{p,h} pi_h y_{p,h}` (USD/h; `define_objective` with energy 0, server cost 1).
'''

# (path, anchor line, text inserted after it): the edits of docs/architecture.md, "Extension points"
BACKEND_EDITS = [
    ("dynaplan/solvers/result.py", '    CPSAT = "cpsat"\n', '    TOY = "toy"\n'),
    ("dynaplan/solvers/backend.py", '    Backend.CPSAT: "dynaplan.solvers.cpsat:CpsatBackend",\n',
     '    Backend.TOY: "dynaplan.solvers.toy:ToyBackend",\n'),
]
BACKEND_NEW = {"dynaplan/solvers/toy.py": TOY_BACKEND}
FORMULATION_EDITS = [
    ("dynaplan/planning/registry.py", '    MONOLITHIC = "monolithic"\n', '    CHEAPEST = "cheapest"\n'),
    ("dynaplan/planning/registry.py", "from dynaplan.formulations import pool as pool_f\n",
     "from dynaplan.formulations import cheapest as cheapest_f\n"),
    ("dynaplan/planning/registry.py", "def _read_pools(pl, na, x, epoch_s, reports):\n",
     None),  # anchor only: the builder goes before it (below)
    ("dynaplan/planning/registry.py", "    ModelKind.MONOLITHIC: Formulation(_monolithic, _read_pools),\n",
     "    ModelKind.CHEAPEST: Formulation(_cheapest, _read_pools),\n"),
    ("tests/test_contracts.py", "NO_MODEL = {", None),  # anchor only: the BUILT entry goes before it
]
CHEAPEST_BUILDER = ("def _cheapest(pl, pool, prices):\n"
                    "    return cheapest_f.build(pl.ops, pl.segments, pl.routes, {c: 1.0 for c in pl.classes},\n"
                    "                            pl.inventory.servers, pl.hardware, pl.classes, pl._penalty)\n\n\n")
CONTRACT_ENTRY = 'BUILT["cheapest.md"] = lambda pl: set(pl._model("cheapest").model.con_blocks)\n'
FORMULATION_NEW = {"dynaplan/formulations/cheapest.py": TOY_FORMULATION, "formulations/cheapest.md": TOY_DOC}

EXPECTED_BACKEND_FILES = {"dynaplan/solvers/result.py", "dynaplan/solvers/backend.py", "dynaplan/solvers/toy.py"}
EXPECTED_FORMULATION_FILES = {"dynaplan/planning/registry.py", "dynaplan/formulations/cheapest.py",
                              "formulations/cheapest.md", "tests/test_contracts.py"}


def _insert_after(path: Path, anchor: str, text: str) -> None:
    src = path.read_text()
    assert src.count(anchor) == 1, f"{path.name}: the recipe's anchor {anchor!r} is not one line any more"
    path.write_text(src.replace(anchor, anchor + text))


def _insert_before(path: Path, anchor: str, text: str) -> None:
    src = path.read_text()
    assert src.count(anchor) == 1, f"{path.name}: the recipe's anchor {anchor!r} is not one line any more"
    path.write_text(src.replace(anchor, text + anchor))


def _touched(copy: Path) -> set[str]:
    out = set()
    for tree in ("dynaplan", "formulations", "tests"):
        for p in (copy / tree).rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts:
                rel = str(p.relative_to(copy))
                orig = ROOT / rel
                if not orig.exists() or not filecmp.cmp(p, orig, shallow=False):
                    out.add(rel)
    return out


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    copy = tmp_path_factory.mktemp("newcomer")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "dynaplan", copy / "dynaplan", ignore=ignore)
    shutil.copytree(ROOT / "formulations", copy / "formulations", ignore=ignore)
    shutil.copytree(ROOT / "tests", copy / "tests", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis"))

    for rel, anchor, text in BACKEND_EDITS:
        _insert_after(copy / rel, anchor, text)
    for rel, text in BACKEND_NEW.items():
        (copy / rel).write_text(text)
    backend_files = _touched(copy)

    for rel, anchor, text in FORMULATION_EDITS:
        if text is not None:
            _insert_after(copy / rel, anchor, text)
    _insert_before(copy / "dynaplan/planning/registry.py", "def _read_pools(pl, na, x, epoch_s, reports):\n",
                   CHEAPEST_BUILDER)
    _insert_before(copy / "tests/test_contracts.py", "NO_MODEL = {", CONTRACT_ENTRY)
    for rel, text in FORMULATION_NEW.items():
        (copy / rel).write_text(text)
    formulation_files = _touched(copy) - backend_files
    return copy, backend_files, formulation_files


def _run(copy: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)


def _doc_section(title: str) -> str:
    text = DOC.read_text()
    m = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^### |^## |\Z)", text, re.M | re.S)
    assert m, f"docs/architecture.md has no section '### {title}'"
    return m.group(1)


def test_the_files_touched_are_the_ones_the_document_names(newcomer):
    _, backend_files, formulation_files = newcomer
    assert backend_files == EXPECTED_BACKEND_FILES
    assert formulation_files == EXPECTED_FORMULATION_FILES
    for title, files in (("A solver backend", backend_files), ("A formulation", formulation_files)):
        section = _doc_section(title)
        assert f"{len(files)} files" in section, (title, len(files))
        for rel in files:
            name = rel.replace("toy.py", "<name>.py").replace("cheapest", "<name>")
            assert f"`{name}`" in section, (title, name)


USE = r'''
import json
from dynaplan.domain import DEFAULT_SLOS
from dynaplan.planning import Planner, check_plan
from dynaplan.planning.registry import ModelKind
from dynaplan.profiles import Profile
from dynaplan.solvers import Backend, backends

prof = Profile.default()
inv = {"h100-80gb": 6}
f = {"SS": 12.0, "MS": 4.0, "LL": 0.5}
out = {"backends": [b.value for b in backends()]}
toy, ref = Planner(prof, inv, backend="toy"), Planner(prof, inv)
for call in ("plan", "plan_monolithic"):
    a, b = getattr(toy, call)(f), getattr(ref, call)(f)
    ok = check_plan(prof, toy.inventory.servers, DEFAULT_SLOS, a, forecast=f, options=toy.options)
    out[call] = {"toy_power_w": a.power_w, "highs_power_w": b.power_w, "status": a.report.status.value,
                 "pool_backends": sorted({pp.report.backend.value for pp in a.pools if pp.report is not None}),
                 "report_backend": a.report.backend.value,
                 "checked": bool(ok.ok), "violations": [str(v) for v in ok.violations]}

pl = Planner(prof, inv)
cm = pl._model(ModelKind("cheapest"))
x, report = pl._solve_cached(cm, f)
pools = cm.read(pl, x, pl.options.pool_epoch_s, {})
energy_plan = pl.plan_monolithic(f)
price = {h: hw.price_usd_per_server_h for h, hw in pl.hardware.items()}
cost = lambda ps: sum(n * price[h] for pp in ps for h, n in pp.servers.items())
out["cheapest"] = {"status": report.status.value, "objective": report.objective, "server_cost": cost(pools),
                   "energy_plan_server_cost": cost(energy_plan.pools),
                   "served": {c: sum(pp.served_rps.get(c, 0.0) for pp in pools) for c in f}}
print(json.dumps(out))
'''


def test_the_toy_backend_and_formulation_work_through_the_layers(newcomer):
    copy, _, _ = newcomer
    res = _run(copy, "-c", USE)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["backends"] == ["highs", "pyomo", "cpsat", "toy"]
    for call in ("plan", "plan_monolithic"):
        r = out[call]
        assert r["report_backend"] == "toy", r
        assert r["pool_backends"] == (["toy"] if call == "plan" else []), r  # monolithic pools carry no report
        assert r["checked"], r["violations"]
        assert r["status"] in ("optimal", "feasible")
        # both solved to the default 1e-4 gap: the same plan power within it (true powers, W)
        assert r["toy_power_w"] == pytest.approx(r["highs_power_w"], rel=2e-3)
    c = out["cheapest"]
    assert c["status"] == "optimal"
    assert c["objective"] == pytest.approx(c["server_cost"], rel=1e-6)
    assert c["server_cost"] <= c["energy_plan_server_cost"] + 1e-9
    assert all(c["served"][k] >= v * (1 - 1e-6) for k, v in {"SS": 12.0, "MS": 4.0, "LL": 0.5}.items())


def test_the_cross_backend_tests_pick_the_toy_backend_up(newcomer):
    """No test lists the backends by hand: the solver-layer tests parametrised over ``Backend`` run
    the toy backend too (optima, infeasibility, time limits, the shared verification, sessions),
    and the planner's unknown-backend message names it."""
    copy, _, _ = newcomer
    res = _run(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_solver_backends.py",
               "tests/test_input_integrity.py", "-k", "toy or planner_arguments_are_refused")
    assert res.returncode == 0, res.stdout[-3000:]
    m = re.search(r"(\d+) passed", res.stdout)
    assert m and int(m.group(1)) >= 8, res.stdout[-500:]


def test_the_toy_formulation_document_meets_the_label_contract(newcomer):
    copy, _, _ = newcomer
    res = _run(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_contracts.py",
               "-k", "formulation_document_is_covered or cheapest")
    assert res.returncode == 0, res.stdout[-3000:]
    assert "2 passed" in res.stdout, res.stdout[-500:]
