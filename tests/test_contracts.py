"""Contracts the code keeps with its documents and its public types.

* Every constraint label of ``formulations/*.md`` is the name of a constraint block of the model
  built from that document, and every constraint block is a label of it (written generically:
  labels are parsed from the documents, models are built as the planner builds them, so the
  test keeps working when labels or blocks change together).
* Plans are deeply read-only and round-trip through JSON; a state of the wrong type, a call of
  ``diff`` in the old argument order and an observed plan all say what they are.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dynaplan.domain import DEFAULT_SLOS
from dynaplan.errors import ValidationError
from dynaplan.planning import Planner
from dynaplan.planning.plan import Plan
from dynaplan.profiles import Profile
from dynaplan.solvers import Status

FORMULATIONS = Path(__file__).resolve().parents[1] / "formulations"
_LABEL = re.compile(r"\*\*\(([A-Za-z0-9_.]+)\)\*\*")
_NUMBERED = re.compile(r"^\s*\d+\.\s+\*\*\(")
_BULLET = re.compile(r"^\s*[*-]\s+\*\*\(")


def constraint_labels(doc: str) -> tuple[set[str], set[str]]:
    """(row labels, bound labels) of a formulation document.

    A constraint is a ``**(label)**`` opening a numbered list item (or, in a document without
    numbered items, a bulleted one), together with the labels listed right after it on that line
    (``**(a)**, **(b)** and **(c)**``). An item that says "(variable bounds)" is a bound, not a row.
    """
    lines = doc.splitlines()
    opener = _NUMBERED if any(_NUMBERED.match(ln) for ln in lines) else _BULLET
    rows, bounds = set(), set()
    for ln in lines:
        if not opener.match(ln):
            continue
        head = ln.split("`", 1)[0]  # labels before the first formula
        labels = set(_LABEL.findall(head))
        (bounds if "(variable bounds)" in ln else rows).update(labels)
    return rows, bounds


@pytest.fixture(scope="module")
def planner():
    return Planner(Profile.default(), {"h100-80gb": 4}, DEFAULT_SLOS)


def _pool_blocks(pl) -> set[str]:
    return set(pl._model("pool", "SS").model.con_blocks) | set(pl._model("pool+transitions", "SS").model.con_blocks)


def _cluster_blocks(pl) -> set[str]:
    return set(pl._model("cluster").model.con_blocks) | set(pl._model("cluster+transitions").model.con_blocks)


def _monolithic_blocks(pl) -> set[str]:
    return set(pl._model("monolithic").model.con_blocks)


def _placement_blocks(pl) -> set[str]:
    from dynaplan.reconfig import ClusterState, PlacementOptions, TransitionCosts
    from dynaplan.reconfig.placement import _model, _Problem

    prof = pl.profile
    now = pl.plan({"SS": 20.0, "MS": 10.0, "LL": 1.0})
    target = pl.plan({"SS": 8.0, "MS": 25.0, "SL": 2.0})
    state = ClusterState.from_plan(now, prof.hardware, servers={"h100-80gb": 8})  # empty servers: symmetry
    m, _, _ = _model(_Problem(state, target, TransitionCosts(), PlacementOptions()))
    return set(m.con_blocks)


def _capacity_blocks(pl) -> set[str]:
    from dynaplan.capacity import plan_capacity, read_melange  # noqa: F401
    from dynaplan.formulations.capacity import build_capacity_model

    cfg = {"gpu_info": {"a": {"cost": 1.0, "tputs": [[1.0]]}}, "workload_distribution": [[1.0]],
           "total_request_rate": 1.0, "slice_factor": 2}
    p = read_melange(cfg, assignment="sliced").model_copy(update={"energy_cap_kwh": 1.0, "carbon_cap_kg": 1.0})
    return set(build_capacity_model(p)[0].con_blocks)


def _bound_blocks(pl) -> set[str]:
    pl.global_bound({"SS": 1.0})
    return set(pl._bound.model.con_blocks)


BUILT = {"capacity.md": _capacity_blocks, "pool.md": _pool_blocks, "cluster.md": _cluster_blocks,
         "monolithic.md": _monolithic_blocks, "placement.md": _placement_blocks, "bound.md": _bound_blocks}
NO_MODEL = {"instance.md": "rules of an argmin over clocks (no solver): formulations/instance.py cites them"}


def test_every_formulation_document_is_covered():
    docs = {p.name for p in FORMULATIONS.glob("*.md")}
    assert docs == set(BUILT) | set(NO_MODEL), docs ^ (set(BUILT) | set(NO_MODEL))


@pytest.mark.parametrize("doc", sorted(BUILT))
def test_constraint_labels_are_the_model_blocks(planner, doc):
    rows, bounds = constraint_labels((FORMULATIONS / doc).read_text())
    assert rows, f"{doc}: no constraint labels parsed"
    blocks = BUILT[doc](planner)
    assert rows - blocks == set(), f"{doc}: labels with no constraint block in the model"
    assert blocks - rows == set(), f"{doc}: constraint blocks the document does not label"
    assert not bounds & blocks, f"{doc}: bound labels {bounds & blocks} are rows in the model"


def test_rule_labels_without_a_model_are_cited_by_their_code():
    src = (Path(__file__).resolve().parents[1] / "dynaplan/formulations/instance.py").read_text()
    text = (FORMULATIONS / "instance.md").read_text()
    for label in _LABEL.findall(text):
        assert f"({label})" in src, f"instance.md label {label!r} is not cited in formulations/instance.py"


# ------------------------------------------------------------------------------------ layers
# Lower layers never import upper ones (docs/architecture.md, "Layers"); a package may import
# any package of a lower rank.
LAYERS = {"errors": 0, "validation": 1, "limits": 1, "domain": 2, "solvers": 2, "profiles": 3, "workload": 3,
          "formulations": 4, "planning": 5, "reconfig": 6, "replay": 6, "capacity": 6, "sweep": 7,
          "cli": 8, "testing": 8, "__main__": 8, "__init__": 8}
# Modules that sit below their package: the capacity planner's validated inputs are the problem
# layer its formulation is built from (formulations/capacity.py reads a CapacityProblem).
MODULE_LAYERS = {"dynaplan.capacity.problem": 1}


def _imports(path: Path) -> set[str]:
    import ast

    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("dynaplan."):
            out.add(n.module)
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names if a.name.startswith("dynaplan.")}
    return out


def _layer(module: str) -> int:
    for m, rank in MODULE_LAYERS.items():
        if module == m or module.startswith(m + "."):
            return rank
    return LAYERS[module.split(".")[1]]


def test_no_module_imports_a_layer_above_its_own():
    pkg = Path(__file__).resolve().parents[1] / "dynaplan"
    upward = []
    for path in pkg.rglob("*.py"):
        module = "dynaplan." + ".".join(path.relative_to(pkg).with_suffix("").parts)
        assert module.split(".")[1] in LAYERS, f"{module}: a package with no layer in LAYERS"
        upward += [f"{module} -> {m}" for m in _imports(path)
                   if m.split(".")[1] != module.split(".")[1] and _layer(m) > _layer(module)]
    assert not upward, upward


# ------------------------------------------------------------------------------------ benchmarks
ROOT = Path(__file__).resolve().parents[1]


def _runnable_scripts() -> set[str]:
    """Modules of ``benchmarks/`` and ``dynaplan/`` run as scripts (``__main__``), the CLIs aside."""
    files = list((ROOT / "benchmarks").glob("*.py")) + list((ROOT / "dynaplan").rglob("*.py"))
    return {str(p.relative_to(ROOT)) for p in files
            if p.name != "__main__.py" and re.search(r"^if __name__ == .__main__.:", p.read_text(), re.M)}


def test_every_measurement_script_is_in_the_benchmark_registry_or_says_why_not():
    """A runnable measurement either has a registered form in ``python -m benchmarks`` (a scenario
    module imports it) or is listed in ``benchmarks.registry.OUTSIDE`` with its reason."""
    import sys

    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.registry import OUTSIDE
    finally:
        sys.path.remove(str(ROOT))
    scenarios = "\n".join(p.read_text() for p in (ROOT / "benchmarks" / "scenarios").glob("*.py"))
    scripts = _runnable_scripts()
    assert "benchmarks/pool_exactness.py" in scripts and "dynaplan/replay/experiments.py" in scripts
    for path in sorted(scripts):
        module = path[:-3].replace("/", ".")
        pkg, _, name = module.rpartition(".")
        registered = f"from {pkg} import {name}\n" in scenarios or f"import {module}\n" in scenarios
        assert registered or path in OUTSIDE, f"{path}: runs on its own but is neither registered nor in OUTSIDE"
    for path, why in OUTSIDE.items():
        assert (ROOT / path).is_file() and len(why) > 40, path


# ------------------------------------------------------------------------------------ typed API
def test_plans_are_read_only_all_the_way_down_and_round_trip(planner):
    plan = planner.plan({"SS": 3.0, "MS": 1.5})
    with pytest.raises(TypeError):
        plan.pools[0].served_rps["SS"] = 999.0
    with pytest.raises(TypeError):
        plan.servers["h100-80gb"] = 0
    with pytest.raises(TypeError):
        plan.pools[0].groups[0].load_rps_per_instance.clear()
    again = Plan.from_json(plan.to_json())
    assert again == plan and again.pools[0].served_rps == dict(plan.pools[0].served_rps)
    import pickle

    assert pickle.loads(pickle.dumps(plan)) == plan


def test_a_state_of_the_wrong_type_is_a_clear_error(planner):
    with pytest.raises(ValidationError, match=r"Planner.plan: argument state: dict .*; expected PlanningState or None"):
        planner.plan({"SS": 1.0}, state={"servers": [], "instances": []})
    with pytest.raises(ValidationError, match=r"Planner.allot: argument state: list .*; expected PlanningState or None"):
        planner.allot({"SS": 1.0}, state=[1, 2])


def test_reconfig_argument_order_matches_the_planner(planner):
    from dynaplan.reconfig import ClusterState, TransitionCosts, diff, plan_of

    plan = planner.plan({"SS": 3.0})
    state = ClusterState.from_plan(plan, planner)
    assert diff(planner.profile, state, DEFAULT_SLOS, plan).actions == ()
    with pytest.raises(ValidationError, match=r"diff\(profile, state, slos, plan, costs\)"):
        diff(state, plan, TransitionCosts(), planner.profile)
    observed = plan_of(planner.profile, state, DEFAULT_SLOS)
    assert observed.mode == "observed"
    # no solver ran: the report does not claim an optimum from a backend
    assert observed.report.status is Status.NOT_SOLVED and observed.report.backend is None
    assert observed.power_w == pytest.approx(plan.power_w, rel=1e-9)


# ------------------------------------------------------------------------------------ one power rule
def test_replay_mixed_power_is_the_profile_rule():
    """The replay's dense mixed-instance power (evaluate.mixed_power, on resampled curves) is the
    rule of Profile.mixed_power_w — the planner's, the instance level's and reconfig's — on the
    profile's own curves ("hold" below the lightest point), up to the resampling grid."""
    import numpy as np

    from dynaplan.replay.evaluate import mixed_power
    from dynaplan.replay.tables import ProfileTables

    prof = Profile.default()
    tab = ProfileTables.build(prof, DEFAULT_SLOS, hardware=("h100-80gb",), grid_points=20000, idle_power="hold")
    rng = np.random.default_rng(0)
    classes = list(tab.class_names)
    checked = 0
    for key, (h, tp) in enumerate(tab.keys):
        for col in range(int(tab.n_clocks[key])):
            f = int(tab.clocks_mhz[key, col])
            ok = np.flatnonzero(tab.feasible[key, col] & (tab.lmax[key, col] > 0))
            if ok.size < 2:
                continue
            serve = rng.choice(ok, size=min(3, ok.size), replace=False)
            u = rng.dirichlet(np.ones(serve.size)) * rng.uniform(0.05, 1.0)  # utilisation shares, U <= 1
            lmax = tab.lmax[key, col, serve]
            u_t = np.zeros(len(classes))
            u_t[serve] = u
            cells = tab.cell(key, col, np.arange(len(classes)))
            replay = float(mixed_power(tab, cells, u_t, np.full(len(classes), 1.0 / len(classes))))
            gid = prof.group_ids([h] * serve.size, [tp] * serve.size, [f] * serve.size, [classes[c] for c in serve])
            own = prof.group_ids(h, tp, f, classes[serve[0]])
            planner = float(prof.mixed_power_w(np.zeros(serve.size, dtype=np.int64), gid, lmax, u * lmax, own)[0])
            assert replay == pytest.approx(planner, rel=1e-3), (h, tp, f, [classes[c] for c in serve])
            checked += 1
    assert checked >= 10


def test_literal_option_types_match_their_value_lists():
    from typing import get_args

    from dynaplan.planning.plan import PlanMode
    from dynaplan.reconfig.placement import PlacementMethod
    from dynaplan.replay.engine import GridMode, IdlePowerMode
    from dynaplan.replay.grid import MAPPING_MODES
    from dynaplan.replay.tables import IDLE_POWER_MODES

    assert set(get_args(IdlePowerMode)) == set(IDLE_POWER_MODES)
    assert set(get_args(GridMode)) == set(MAPPING_MODES)
    assert "observed" in get_args(PlanMode) and "cpsat-optimal" in get_args(PlacementMethod)
