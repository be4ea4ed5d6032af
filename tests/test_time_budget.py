"""``PlannerOptions.time_budget_s`` (formulations/cluster.md, "Time budget"): what the budget cuts
and what it keeps, checked without depending on the machine's speed: a budget of 0 (only the
mandatory steps), an ample budget (every step), and polishing cut after a counted number of
checks instead of a clock.
"""

from __future__ import annotations

import itertools

import pytest

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import DynaplanError, ValidationError
from dynaplan.planning import Planner, PlannerOptions, check_plan
from dynaplan.planning.polish import polish
from dynaplan.profiles import Profile

H100 = "h100-80gb"
INV = {H100: 5}
# two classes whose first rung polishing improves (by more than 0.1%)
TWO = {"SL": 2.1938, "MS": 26.1696}
# the first rung opens 3 servers (4,756.5 W); polishing releases one of the SL pool's (4,495.3 W)
CUT = {"ML": 11.0, "SL": 19.0883}


@pytest.fixture(scope="module")
def prof():
    return Profile.default()


def _planner(prof, inv=INV, **opts) -> Planner:
    return Planner(prof, inv, DEFAULT_SLOS, options=PlannerOptions(**opts))


def test_budget_zero_runs_the_first_rung_without_polishing(prof):
    full = _planner(prof).plan(CUT)
    pl = _planner(prof, time_budget_s=0.0)
    solved = []
    inner = pl._plan_pool
    pl._plan_pool = lambda *a, **k: solved.append(a[0]) or inner(*a, **k)
    cut = pl.plan(CUT)
    assert check_plan(prof, INV, DEFAULT_SLOS, cut, forecast=CUT).ok
    assert "polish: stopped by the time budget" in cut.notes
    assert "time budget: the ladder stopped after 1 rung(s)" in cut.notes
    assert not any(n.startswith("polish: pool") for n in cut.notes)
    # one solve per pool of the first allotment, nothing for polishing or further rungs
    assert sorted(solved) == sorted(pp.pool for pp in cut.pools)
    assert sum(cut.servers.values()) == 3 and sum(full.servers.values()) == 2
    assert cut.power_w >= full.power_w * (1 + 1e-3)
    # the report is as honest as without a budget: the same global bound, the gap of this plan
    rep = cut.report
    assert rep.bound == pytest.approx(full.report.bound, rel=1e-9)
    assert rep.gap == pytest.approx((cut.power_w - rep.bound) / cut.power_w, abs=1e-9)


def test_budget_zero_does_not_depend_on_the_machine(prof):
    a, b = (_planner(prof, time_budget_s=0.0).plan(TWO) for _ in range(2))
    assert a.power_w == b.power_w and a.notes == b.notes


@pytest.mark.parametrize("search", ["ladder", "single"])
def test_an_ample_budget_changes_nothing(prof, search):
    f = {**TWO, "LL": 1.5}
    base = _planner(prof, {H100: 8}, cluster_search=search).plan(f)
    ample = _planner(prof, {H100: 8}, cluster_search=search, time_budget_s=1e6).plan(f)
    assert ample.power_w == pytest.approx(base.power_w, rel=1e-12)
    assert ample.notes == base.notes


def test_polishing_cut_short_keeps_only_improving_moves(prof):
    """``polish(out_of_time=...)`` stopped after k checks, for every k: the plan is never below the
    full polish's (which makes the best move of each round) nor above the unpolished one, every
    plan is checked, and a large enough k gives the full polish."""
    pl = _planner(prof, time_budget_s=0.0)
    start = pl.plan(TWO)
    pools = {pp.pool: pp for pp in start.pools}
    routed = {p: dict(pp.served_rps) for p, pp in pools.items()}
    servers = {p: dict(pp.servers) for p, pp in pools.items()}
    args = (pools, routed, servers, pl.routes, pl.plan_pool, None, INV)
    full, _, _, full_notes = polish(*args)
    full_w = sum(pp.power_w for pp in full.values())
    start_w = start.power_w
    assert full_w < start_w * (1 - 1e-3) and "polish: stopped by the time budget" not in full_notes
    seen = set()
    for k in range(0, 60):
        calls = itertools.count()
        got, _, srv, notes = polish(*args, out_of_time=lambda: next(calls) >= k)
        got_w = sum(pp.power_w for pp in got.values())
        assert full_w * (1 - 1e-9) <= got_w <= start_w * (1 + 1e-9), k
        assert sum(sum(s.values()) for s in srv.values()) <= sum(INV.values())
        seen.add(round(got_w, 6))
        if "polish: stopped by the time budget" not in notes:
            assert got_w == pytest.approx(full_w, rel=1e-12) and notes == full_notes
            break
    else:
        pytest.fail("polishing never finished within 60 checks")
    assert len(seen) >= 2  # some k cut it short, and the last one let it finish


def test_a_round_whose_pools_were_prefetched_keeps_its_move_when_time_runs_out(prof):
    """With worker threads a polishing round first solves its requests side by side (prefetch);
    when the budget runs out during that, the round still takes its best move from those answers,
    and no further round starts."""
    pl = _planner(prof, time_budget_s=0.0)
    start = pl.plan(TWO)
    pools = {pp.pool: pp for pp in start.pools}
    routed = {p: dict(pp.served_rps) for p, pp in pools.items()}
    servers = {p: dict(pp.servers) for p, pp in pools.items()}
    memo: dict = {}

    def key(p, loads, srv):
        return p, tuple(sorted(loads.items())), tuple(sorted(srv.items()))

    def plan_pool(p, loads, srv):
        k = key(p, loads, srv)
        if k not in memo:
            try:
                memo[k] = pl.plan_pool(p, loads, srv)
            except DynaplanError as exc:
                memo[k] = exc
        if isinstance(memo[k], Exception):
            raise memo[k]
        return memo[k]

    spent = []

    def prefetch(requests):
        for r in requests:
            try:
                plan_pool(*r)
            except DynaplanError:
                pass
        spent.append(len(requests))  # the budget is spent once the first round's pools are in
        return True

    args = (pools, routed, servers, pl.routes, plan_pool, None, INV)
    full, _, _, full_notes = polish(*args)
    got, _, _, notes = polish(*args, prefetch=prefetch, out_of_time=lambda: bool(spent))
    assert len(spent) == 1 and spent[0] > 0
    assert notes == [full_notes[0], "polish: stopped by the time budget"]
    assert sum(pp.power_w for pp in got.values()) < start.power_w * (1 - 1e-3)
    # a prefetch that solved nothing (one pool's requests only, say) leaves them unanswered: cut
    memo.clear()
    spent.clear()
    got, _, _, notes = polish(*args, prefetch=lambda r: spent.append(1) or False, out_of_time=lambda: bool(spent))
    assert notes == ["polish: stopped by the time budget"]
    assert sum(pp.power_w for pp in got.values()) == pytest.approx(start.power_w, rel=1e-12)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "soon"])
def test_a_bad_budget_is_refused(bad):
    with pytest.raises(ValidationError, match="PlannerOptions.time_budget_s"):
        PlannerOptions(time_budget_s=bad)
