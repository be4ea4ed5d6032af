"""Profile queries: exact answers on hand tables, properties on synthetic profiles.

Also checks that the synthetic profiles of :mod:`dynaplan.testing` have the physical shape the
module promises, since every property test of the project builds on them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynaplan.domain import A100_80GB, DEFAULT_SLOS, H100_80GB, SLO, SLOTable
from dynaplan.profiles import Profile
from dynaplan.profiles import schema
from dynaplan.testing import profile_tables, profiles, synthetic_profile, synthetic_profile_table

HW = "h100-80gb"
PROPS = settings(max_examples=25, deadline=None)


def hand_profile(rows: list[tuple]) -> Profile:
    """Rows of (tp, freq_mhz, class, load_rps, power_w, ttft_ms, tbt_ms[, throughput_rps])."""
    recs = []
    for r in rows:
        tp, f, c, load, pw, ttft, tbt, *thr = r
        recs.append(dict(model="llama2-70b", hardware=HW, tp=tp, freq_mhz=f, request_class=c, load_rps=load,
                         power_w=pw, ttft_p99_ms=ttft, tbt_p99_ms=tbt, throughput_rps=thr[0] if thr else load))
    return Profile(pd.DataFrame(recs), source="hand", complete=False)


# ---------------------------------------------------------------- interpolation, exact
@pytest.fixture(scope="module")
def two_groups() -> Profile:
    return hand_profile([
        (8, 1980, "SS", 1.0, 1000.0, 50.0, 10.0),
        (8, 1980, "SS", 3.0, 2000.0, 150.0, 30.0),
        (8, 1980, "SS", 7.0, 2400.0, 350.0, 90.0),
        (4, 1200, "LL", 0.5, 600.0, 900.0, 40.0),
        (4, 1200, "LL", 1.0, 800.0, 1500.0, 60.0),
    ])


def test_interpolation_at_grid_points_midpoints_and_outside(two_groups):
    p = two_groups
    loads = [1.0, 2.0, 3.0, 5.0, 7.0, 0.25, 7.5]
    assert p.power_w(HW, 8, 1980, "SS", loads).tolist()[:5] == [1000.0, 1500.0, 2000.0, 2200.0, 2400.0]
    held, above = p.power_w(HW, 8, 1980, "SS", loads)[5:]
    assert held == 1000.0  # below the first point: held at the first value
    assert np.isnan(above)  # above the last point: never observed
    assert p.ttft_p99_ms(HW, 8, 1980, "SS", 2.0)[0] == 100.0
    assert p.tbt_p99_ms(HW, 8, 1980, "SS", 5.0)[0] == 60.0
    assert p.energy_per_request_j(HW, 8, 1980, "SS", 2.0)[0] == 750.0


def test_interpolation_is_vectorised_over_groups(two_groups):
    p = two_groups
    out = p.power_w(HW, [8, 4, 4, 8], [1980, 1200, 1200, 1980], ["SS", "LL", "LL", "SS"], [2.0, 0.75, 0.1, 9.0])
    np.testing.assert_array_equal(out, [1500.0, 700.0, 600.0, np.nan])


def test_unknown_group_raises_key_error(two_groups):
    with pytest.raises(KeyError, match="no profile rows"):
        two_groups.power_w(HW, 2, 1980, "SS", 1.0)


def test_single_point_group():
    p = hand_profile([(8, 1980, "SS", 2.0, 1000.0, 50.0, 10.0)])
    out = p.power_w(HW, 8, 1980, "SS", [1.0, 2.0, 2.5])
    assert out[0] == 1000.0 and out[1] == 1000.0 and np.isnan(out[2])


# ---------------------------------------------------------------- max load under SLO, exact
SS_SLO = DEFAULT_SLOS["SS"]  # TTFT 250 ms, TBT 100 ms


def test_max_load_under_slo_known_answers():
    p = hand_profile([
        # ttft breaks at load 4 -> 3
        (8, 1980, "SS", 1.0, 1000.0, 50.0, 10.0),
        (8, 1980, "SS", 2.0, 1100.0, 100.0, 20.0),
        (8, 1980, "SS", 3.0, 1200.0, 250.0, 30.0),  # exactly at the SLO: meets it
        (8, 1980, "SS", 4.0, 1300.0, 400.0, 40.0),
        # tbt breaks at load 2 -> 1
        (8, 1600, "SS", 1.0, 900.0, 50.0, 90.0),
        (8, 1600, "SS", 2.0, 950.0, 60.0, 110.0),
        # saturated at load 3 (throughput 2.5) although latency meets the SLO -> 2
        (8, 1200, "SS", 1.0, 800.0, 50.0, 10.0),
        (8, 1200, "SS", 2.0, 850.0, 60.0, 20.0),
        (8, 1200, "SS", 3.0, 860.0, 70.0, 30.0, 2.5),
        # infeasible from the lightest load
        (8, 800, "SS", 1.0, 700.0, 300.0, 10.0),
        (8, 800, "SS", 2.0, 750.0, 400.0, 20.0),
        # every point meets -> the last
        (4, 1980, "SS", 0.5, 500.0, 40.0, 10.0),
        (4, 1980, "SS", 1.5, 600.0, 80.0, 20.0),
    ])
    res = p.max_load_under_slo(DEFAULT_SLOS).set_index(["tp", "freq_mhz"])
    assert res["max_load_rps"].to_dict() == {
        (4, 1980): 1.5, (8, 800): 0.0, (8, 1200): 2.0, (8, 1600): 1.0, (8, 1980): 3.0,
    }
    assert res["feasible"].to_dict() == {
        (4, 1980): True, (8, 800): False, (8, 1200): True, (8, 1600): True, (8, 1980): True,
    }
    assert res.loc[(8, 1980), "power_w"] == 1200.0
    assert res.loc[(8, 1980), "energy_per_request_j"] == 400.0
    assert np.isnan(res.loc[(8, 800), "power_w"])


def test_max_load_under_slo_uses_the_class_slo():
    p = hand_profile([
        (8, 1980, "LL", 1.0, 1000.0, 1500.0, 10.0),
        (8, 1980, "LL", 2.0, 1100.0, 1900.0, 20.0),
        (8, 1980, "LL", 3.0, 1200.0, 2100.0, 30.0),
    ])
    assert p.max_load_under_slo(DEFAULT_SLOS)["max_load_rps"].tolist() == [2.0]
    tight = SLOTable(per_class={"LL": SLO(ttft_ms=1000.0, tbt_ms=100.0)})
    assert p.max_load_under_slo(tight)["max_load_rps"].tolist() == [0.0]


# ---------------------------------------------------------------- min-energy clock, exact
@pytest.fixture(scope="module")
def clocks_profile() -> Profile:
    return hand_profile([
        # at load 2: 1200 MHz is cheapest but breaks TTFT; 1600 meets and is cheaper than 1980
        (8, 1200, "SS", 1.0, 900.0, 200.0, 30.0),
        (8, 1200, "SS", 3.0, 1100.0, 400.0, 50.0),
        (8, 1600, "SS", 1.0, 1100.0, 100.0, 20.0),
        (8, 1600, "SS", 3.0, 1300.0, 200.0, 40.0),
        (8, 1600, "SS", 5.0, 1500.0, 800.0, 60.0),
        (8, 1980, "SS", 1.0, 1300.0, 80.0, 15.0),
        (8, 1980, "SS", 3.0, 1500.0, 150.0, 30.0),
        (8, 1980, "SS", 5.0, 1700.0, 500.0, 50.0),
        # 1000 MHz is cheapest of all but saturated above load 2
        (8, 1000, "SS", 1.0, 800.0, 100.0, 20.0),
        (8, 1000, "SS", 2.0, 850.0, 150.0, 30.0),
        (8, 1000, "SS", 3.0, 860.0, 200.0, 40.0, 2.2),
    ])


def test_min_energy_clock_picks_least_power_clock_meeting_slo(clocks_profile):
    res = clocks_profile.min_energy_clock([2.0], DEFAULT_SLOS, hardware=HW, tp=8, request_class="SS")
    row = res.iloc[0]
    # 1000 MHz (850 W, TTFT 150) meets the SLO at load 2 and is cheapest
    assert row["freq_mhz"] == 1000 and row["power_w"] == 850.0 and bool(row["meets_slo"])
    res = clocks_profile.min_energy_clock([2.5], DEFAULT_SLOS, hardware=HW, tp=8, request_class="SS")
    row = res.iloc[0]
    # 1000 MHz is saturated at 2.5; 1200 MHz has TTFT 350 > 250; 1600 MHz: 1250 W, TTFT 175
    assert row["freq_mhz"] == 1600
    assert row["power_w"] == pytest.approx(1250.0) and row["ttft_p99_ms"] == pytest.approx(175.0)
    assert row["energy_per_request_j"] == pytest.approx(500.0)


def test_min_energy_clock_without_slo_skips_saturated_clocks(clocks_profile):
    res = clocks_profile.min_energy_clock([2.5], None, hardware=HW, tp=8, request_class="SS")
    assert res["freq_mhz"].tolist() == [1200]  # 1000 MHz would be cheaper but cannot serve 2.5 req/s


def test_min_energy_clock_falls_back_to_max_clock_flagged(clocks_profile):
    # at load 4.5: 1600 MHz TTFT 650, 1980 MHz TTFT 412.5: none meets 250 ms
    res = clocks_profile.min_energy_clock([4.5, 2.0], DEFAULT_SLOS, hardware=HW, tp=8, request_class="SS")
    assert res["freq_mhz"].tolist() == [1980, 1000]
    assert res["meets_slo"].tolist() == [False, True]
    assert res.loc[0, "power_w"] == pytest.approx(1650.0)


def test_min_energy_clock_for_every_combination_at_once(clocks_profile):
    res = clocks_profile.min_energy_clock(2.0, DEFAULT_SLOS)
    assert len(res) == 1 and res.loc[0, "freq_mhz"] == 1000


# ---------------------------------------------------------------- properties
def _meets(row) -> bool:
    slo = DEFAULT_SLOS[row.request_class]
    return row.ttft_p99_ms <= slo.ttft_ms and row.tbt_p99_ms <= slo.tbt_ms


@PROPS
@given(p=profiles())
def test_max_load_never_exceeds_highest_meeting_point(p):
    highest: dict[tuple, float] = {}
    prefix: dict[tuple, float] = {}
    broken: set[tuple] = set()
    for row in p.table.itertuples(index=False):  # sorted by group, then load
        key = (row.model, row.hardware, row.tp, row.freq_mhz, row.request_class)
        highest.setdefault(key, 0.0)
        prefix.setdefault(key, 0.0)
        if _meets(row):
            highest[key] = max(highest[key], row.load_rps)
        ok = _meets(row) and row.throughput_rps >= row.load_rps * (1 - 1e-6)
        if not ok:
            broken.add(key)
        elif key not in broken:
            prefix[key] = row.load_rps
    res = p.max_load_under_slo(DEFAULT_SLOS)
    for row in res.itertuples(index=False):
        key = (row.model, row.hardware, row.tp, row.freq_mhz, row.request_class)
        assert row.max_load_rps <= highest[key]
        assert row.max_load_rps == prefix[key]
        assert row.feasible == (row.max_load_rps > 0)


@PROPS
@given(p=profiles())
def test_max_load_query_is_one_row_per_group(p):
    res = p.max_load_under_slo(DEFAULT_SLOS)
    groups = p.groups
    assert len(res) == len(groups)
    pd.testing.assert_index_equal(res.index, groups.index)
    pd.testing.assert_frame_equal(res[list(schema.GROUP_COLUMNS)], groups)
    assert not res.duplicated(list(schema.GROUP_COLUMNS)).any()


@PROPS
@given(p=profiles())
def test_interpolation_at_grid_points_reproduces_the_table(p):
    t = p.table
    gid = p.group_ids(t["hardware"].to_numpy(), t["tp"].to_numpy(), t["freq_mhz"].to_numpy(),
                      t["request_class"].to_numpy(), t["model"].to_numpy())
    for col in ("power_w", "ttft_p99_ms", "tbt_p99_ms", "throughput_rps"):
        np.testing.assert_allclose(p.interpolate(col, gid, t["load_rps"].to_numpy()), t[col].to_numpy(),
                                   rtol=1e-12, atol=0)


@PROPS
@given(p=profiles(), fracs=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=20))
def test_power_interpolation_is_monotone_when_data_is(p, fracs):
    t = p.table
    starts, ends = p.group_bounds
    power = t["power_w"].to_numpy()
    assert all(np.all(np.diff(power[s:e]) >= 0) for s, e in zip(starts, ends))  # the data is monotone
    load = t["load_rps"].to_numpy()
    lo, hi = load[starts], load[ends - 1]
    x = np.sort(np.asarray(fracs))
    gid = np.repeat(np.arange(len(starts)), len(x))
    q = (lo[:, None] * 0.5 + (hi - lo * 0.5)[:, None] * x[None, :]).ravel()  # also below the first point
    out = p.interpolate("power_w", gid, q).reshape(len(starts), len(x))
    assert np.all(np.isfinite(out))
    assert np.all(np.diff(out, axis=1) >= -1e-9 * out[:, 1:])


@PROPS
@given(
    incs=st.lists(st.tuples(st.floats(0.1, 10.0), st.floats(0.0, 500.0)), min_size=1, max_size=8),
    fracs=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=20),
)
def test_power_interpolation_is_monotone_on_arbitrary_monotone_data(incs, fracs):
    loads = np.cumsum([a for a, _ in incs])
    power = 300.0 + np.cumsum([b for _, b in incs])
    p = hand_profile([(8, 1980, "SS", float(x), float(w), 10.0, 10.0) for x, w in zip(loads, power)])
    q = np.sort(np.asarray(fracs)) * loads[-1]
    out = p.power_w(HW, 8, 1980, "SS", q)
    assert np.all(np.diff(out) >= -1e-9 * np.abs(out[1:]))
    assert np.all(out >= power[0]) and np.all(out <= power[-1])


@PROPS
@given(p=profiles(), frac=st.floats(0.05, 1.0))
def test_min_energy_clock_is_least_power_among_slo_meeting_clocks(p, frac):
    load = float(p.table["load_rps"].max()) * frac
    res = p.min_energy_clock(load, DEFAULT_SLOS)
    # independent check: np.interp on each group's rows, one clock at a time
    best: dict[tuple, tuple[int, float]] = {}
    max_clock: dict[tuple, int] = {}
    for (hw, tp, cls, f), grp in p.table.groupby(["hardware", "tp", "request_class", "freq_mhz"]):
        key = (hw, tp, cls)
        max_clock[key] = max(max_clock.get(key, 0), f)
        x = grp["load_rps"].to_numpy()
        if load > x[-1]:
            continue
        at = {c: float(np.interp(load, x, grp[c].to_numpy()))
              for c in ("power_w", "ttft_p99_ms", "tbt_p99_ms", "throughput_rps")}
        slo = DEFAULT_SLOS[cls]
        if (at["throughput_rps"] >= load * (1 - 1e-6) and at["ttft_p99_ms"] <= slo.ttft_ms
                and at["tbt_p99_ms"] <= slo.tbt_ms and (key not in best or at["power_w"] < best[key][1])):
            best[key] = (f, at["power_w"])
    assert len(res) == len(max_clock)
    for row in res.itertuples(index=False):
        key = (row.hardware, row.tp, row.request_class)
        if key in best:
            assert row.meets_slo and row.power_w == pytest.approx(best[key][1], rel=1e-9)
        else:
            assert not row.meets_slo and row.freq_mhz == max_clock[key]


# ---------------------------------------------------------------- the synthetic profiles themselves
def test_synthetic_profile_is_deterministic():
    a = synthetic_profile_table(seed=11, hardware=(H100_80GB, A100_80GB))
    b = synthetic_profile_table(seed=11, hardware=(H100_80GB, A100_80GB))
    c = synthetic_profile_table(seed=12, hardware=(H100_80GB, A100_80GB))
    pd.testing.assert_frame_equal(a, b)
    assert not a["power_w"].equals(c["power_w"])


def test_synthetic_profile_rejects_bad_arguments():
    with pytest.raises(ValueError, match="clock"):
        synthetic_profile_table(clocks=(1234,))
    with pytest.raises(ValueError, match="tps"):
        synthetic_profile_table(tps=(16,))
    with pytest.raises(ValueError, match="n_loads"):
        synthetic_profile_table(n_loads=0)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_synthetic_profile_is_physically_shaped(seed):
    p = synthetic_profile(seed=seed, hardware=(H100_80GB, A100_80GB))
    t = p.table
    keys = ["hardware", "tp", "request_class", "freq_mhz"]
    g = t.groupby(keys, sort=True)
    # power non-decreasing in load, with a large static part
    assert (g["power_w"].diff().dropna() >= 0).all()
    assert (g["power_w"].first() >= 0.2 * g["power_w"].last()).all()
    # latency rises steeply towards saturation at the max clock
    top = t[t["freq_mhz"] == t["hardware"].map({h.name: h.max_clock_mhz for h in (H100_80GB, A100_80GB)})]
    gt = top.groupby(keys)["ttft_p99_ms"]
    assert (gt.last() >= 3.0 * gt.first()).all()
    # capacity (throughput at the heaviest load) grows with clock and TP
    cap = g["throughput_rps"].last()
    assert (cap.groupby(["hardware", "tp", "request_class"]).diff().dropna() >= 0).all()
    by_tp = cap.reorder_levels(["hardware", "request_class", "freq_mhz", "tp"]).sort_index()
    assert (by_tp.groupby(["hardware", "request_class", "freq_mhz"]).diff().dropna() >= 0).all()
    # longer classes (in either bin) have lower capacity
    c = cap.unstack("request_class")
    for short, long in [("SS", "SM"), ("SM", "SL"), ("SS", "MS"), ("MS", "LS"), ("MM", "LL"), ("SL", "LL")]:
        assert (c[long] <= c[short]).all(), (short, long)
    # at equal load, a higher clock costs more power (loads are shared across clocks)
    wide = t.pivot_table(index=["hardware", "tp", "request_class", "load_rps"], columns="freq_mhz",
                         values="power_w")
    for hw in (H100_80GB, A100_80GB):
        w = wide.loc[hw.name, list(hw.clock_levels_mhz)].to_numpy()
        assert np.all(np.diff(w, axis=1) >= 0)
    # at the lightest load the largest TP meets the default SLO for every class at every clock
    light = t[t["tp"] == 8].groupby(keys).head(1)
    assert all(_meets(r) for r in light.itertuples(index=False))


@settings(max_examples=10, deadline=None)
@given(table=profile_tables())
def test_profile_tables_are_valid(table):
    p = Profile(table, complete=False)
    assert len(p) == len(table)
    assert set(table.columns) >= set(schema.KEY_COLUMNS + schema.REQUIRED_VALUE_COLUMNS)


@settings(max_examples=30, deadline=None)
@given(loads=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2), frac=st.floats(0.0, 1.0))
def test_mixed_power_is_share_weighted_and_reduces_to_one_class(loads, frac):
    """Profile.mixed_power_w against a hand computation with numpy.interp, on the default profile:
    H100 TP8@1600 serving LL and LM, loads as fractions of each class's SLO capacity."""
    prof = Profile.default()
    ml = prof.max_load_under_slo(DEFAULT_SLOS).reset_index().set_index(["hardware", "tp", "freq_mhz", "request_class"])
    t = prof.table
    cls = ("LL", "LM")
    gid = [int(ml.loc[(H100_80GB.name, 8, 1600, c), "group_id"]) for c in cls]
    lmax = np.array([float(ml.loc[(H100_80GB.name, 8, 1600, c), "max_load_rps"]) for c in cls])
    load = np.array(loads) * frac * lmax  # utilisation up to 1 in all
    got = prof.mixed_power_w([0, 0, 1], [gid[0], gid[1], gid[0]], [lmax[0], lmax[1], lmax[0]],
                             [load[0], load[1], load[0]], [gid[0], gid[0]])
    u = load / lmax
    U = u.sum()

    def curve(c, x):
        g = t[(t.hardware == H100_80GB.name) & (t.tp == 8) & (t.freq_mhz == 1600) & (t.request_class == c)]
        g = g.sort_values("load_rps")
        return float(np.interp(x, g.load_rps, g.power_w))

    want_mix = (sum(u[i] / U * curve(c, min(U, 1.0) * lmax[i]) for i, c in enumerate(cls))
                if U > 0 else curve("LL", 0.0))
    assert got[0] == pytest.approx(want_mix, rel=1e-9)
    assert got[1] == pytest.approx(curve("LL", load[0]), rel=1e-9)  # one class: the profile's power at its load
def test_points_up_to_is_the_groups_points_at_or_below_the_load():
    p = Profile.default()
    starts, ends = p.group_bounds
    table = p.table
    for gid in (0, 3, len(starts) - 1):
        load = table["load_rps"].to_numpy()[starts[gid]:ends[gid]]
        power = table["power_w"].to_numpy()[starts[gid]:ends[gid]]
        for cut in (load[0], load[len(load) // 2], load[-1], 0.5 * (load[0] + load[1]), load[-1] * 2):
            got_l, got_p = p.points_up_to(gid, cut)
            keep = load <= cut * (1 + 1e-12)
            assert list(got_l) == list(load[keep]) and list(got_p) == list(power[keep])
        assert len(p.points_up_to(gid, load[0] * 0.5)[0]) == 0
