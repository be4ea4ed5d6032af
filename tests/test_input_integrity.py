"""Input integrity: no silently wrong result, and every user error is dynaplan's own, one line.

One test per kind of failure (issue 13, sections 2 and 4), a few cases each:

* a profile that validates gives exact lookups, and one whose values leave the physical ranges
  of ``schema.VALUE_RANGES`` is refused naming the row; repeated columns are refused;
* a boolean is never read as a number (state, inventory, options, forecast, grid series);
* carbon intensity is never negative (prices may be);
* a replay of zero requests is refused; requests longer than the profile covers never count
  as within SLO;
* a state the planner can read never ends in ZeroDivisionError, and its times are bounded;
* pydantic, numpy and Python errors never escape the public API: ``Model.field`` is named, and
  a huge input is quoted as a bounded excerpt.
"""

from __future__ import annotations

import json
import re
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from dynaplan.cli import main
from dynaplan.domain import DEFAULT_SLOS, H100_80GB
from dynaplan.errors import DynaplanError, InputError, ValidationError
from dynaplan.planning import Planner, PlannerOptions
from dynaplan.profiles import Profile
from dynaplan.profiles import schema
from dynaplan.reconfig import ClusterState, Instance, Server, diff, plan_of
from dynaplan.replay.grid import GridSeries, HourlySeries, caiso_carbon_intensity, caiso_price, read_hourly_series
from dynaplan.solvers import SolveOptions
from dynaplan.testing import synthetic_profile_table
from dynaplan.validation import MAX_TIME_S, excerpt
from dynaplan.workload.trace import Trace


@pytest.fixture(scope="module")
def prof() -> Profile:
    return Profile.default()


@pytest.fixture(scope="module")
def planner(prof) -> Planner:
    return Planner(prof, {"h100-80gb": 4})


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run ``dynaplan ARGS``; return (exit code, the one stderr line)."""
    monkeypatch.setenv("COLUMNS", "160")

    def run(*args) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["dynaplan", *map(str, args)])
        with pytest.raises(SystemExit) as exc:
            main()
        _, err = capsys.readouterr()
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) <= 1, err
        return exc.value.code, lines[0] if lines else ""

    return run


def _state(**inst) -> dict:
    base = {"id": "a", "pool": "SS", "tp": 1, "gpus": {"s0": [0]}, "freq_mhz": 1980, "load_rps": {"SS": 1.0}}
    return {"servers": [{"id": "s0", "hardware": "h100-80gb"}], "instances": [{**base, **inst}]}


# ------------------------------------------------------------------------------ section 2: profiles
def test_profile_lookups_are_exact_whatever_the_loads(monkeypatch):
    """The lookup key once was group x span + load in floats: one 1e15 req/s cell made span so
    large that every other load lost its low digits. Lookups must match a per-group np.interp
    even when the ranges are widened to let such a cell in."""
    table = synthetic_profile_table(seed=3, tps=(2, 4), n_loads=5, clocks=(1000, 1980))
    last = table.sort_values(list(schema.KEY_COLUMNS)).index[-1]
    table.loc[last, ["load_rps", "throughput_rps"]] = 1e15
    monkeypatch.setitem(schema.VALUE_RANGES, "load_rps", (0.0, 1e16, True))
    monkeypatch.setitem(schema.VALUE_RANGES, "throughput_rps", (0.0, 1e16, True))
    p = Profile(table, complete=False)
    starts, ends = p.group_bounds
    t = p.table
    load, power = t["load_rps"].to_numpy(), t["power_w"].to_numpy()
    gids, xs, want = [], [], []
    for g, (s, e) in enumerate(zip(starts, ends)):
        for x in np.r_[0.5 * (load[s:e - 1] + load[s + 1:e]), load[s:e]]:
            if x < 1e6:
                gids.append(g)
                xs.append(x)
                want.append(np.interp(x, load[s:e], power[s:e]))
    got = p.interpolate("power_w", np.array(gids), np.array(xs))
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("column, value, expect", [
    ("load_rps", 1e15, "field 'load_rps': 1e+15 exceeds 1e+06"),
    ("power_w", 1e308, "field 'power_w': 1e+308 exceeds 1e+06"),
    ("ttft_p99_ms", 1e300, "field 'ttft_p99_ms': 1e+300 exceeds 1e+09"),
    ("freq_mhz", 100000, "field 'freq_mhz': 100000 exceeds 10000"),
    ("tp", 0, "field 'tp': 0 must be >= 1"),
])
def test_profile_values_outside_their_physical_range_are_refused_naming_the_row(column, value, expect):
    table = synthetic_profile_table(seed=1, tps=(2,), n_loads=4, clocks=(1980,))
    table.loc[2, column] = value
    if column == "load_rps":
        table.loc[2, "throughput_rps"] = value
    with pytest.raises(ValidationError, match=r"row 3 \(line 4\)") as exc:
        Profile(table, complete=False)
    assert expect in str(exc.value)


def test_repeated_columns_are_refused_in_profiles_and_grid_series(tmp_path):
    table = synthetic_profile_table(seed=1, tps=(2,), n_loads=4, clocks=(1980,))
    doubled = pd.concat([table, table[["power_w"]] * 2], axis=1)
    with pytest.raises(ValidationError, match=r"column\(s\) \['power_w'\] appear more than once"):
        Profile(doubled, complete=False)
    path = tmp_path / "p.csv"
    doubled.to_csv(path, index=False)  # the header holds power_w twice; pandas would read power_w.1
    with pytest.raises(ValidationError, match=r"p.csv: line 1: column\(s\) \['power_w'\] appear more than once"):
        Profile.read(path, complete=False)
    grid = tmp_path / "ci.csv"
    times = pd.date_range("2022-01-01", periods=24, freq="h", tz="UTC")
    grid.write_text("time,ci,ci\n" + "".join(f"{t},100,900\n" for t in times))
    with pytest.raises(ValidationError, match=r"ci.csv: line 1: column\(s\) \['ci'\] appear more than once"):
        read_hourly_series(grid, "ci", unit="gCO2/kWh")


# ------------------------------------------------------------------------------ section 2: booleans
def test_booleans_are_never_read_as_numbers(prof, planner, tmp_path):
    for inst, where in [({"tp": True}, "field tp: boolean True"),
                        ({"gpus": {"s0": [True]}}, "field gpus['s0'][0]: boolean True"),
                        ({"load_rps": {"SS": False}}, "field load_rps['SS']: boolean False")]:
        with pytest.raises(ValidationError) as exc:
            ClusterState.from_json(json.dumps(_state(**inst)), "state.json")
        assert str(exc.value) == f"state.json: instance a (instances.0): {where}; expected a number"
    with pytest.raises(InputError, match=r"Inventory: field servers\['h100-80gb'\]: boolean True; expected a number"):
        Planner(prof, {"h100-80gb": True})
    with pytest.raises(InputError, match="SolveOptions: field time_limit_s: boolean True"):
        SolveOptions(time_limit_s=True)
    with pytest.raises(InputError, match="HardwareType: field clock_levels_mhz"):
        H100_80GB.model_validate({**H100_80GB.model_dump(), "clock_levels_mhz": [True, 2]})
    with pytest.raises(ValidationError, match=r"forecast: class SS load True \(boolean\): expected a number"):
        planner.plan({"SS": True})
    path = tmp_path / "ci.csv"
    times = pd.date_range("2022-01-01", periods=24, freq="h", tz="UTC")
    path.write_text("time,ci\n" + "".join(f"{t},True\n" for t in times))
    with pytest.raises(ValidationError, match=r"ci.csv: row 1, field 'ci': boolean True; expected a number"):
        read_hourly_series(path, "ci")


# ------------------------------------------------------------------------------ section 2: grid
def test_carbon_intensity_is_never_negative_but_prices_may_be():
    times = pd.date_range("2022-01-01", periods=48, freq="h", tz="UTC")
    values = np.full(48, 300.0)
    values[5] = -500.0
    series = HourlySeries("ci", "gCO2/kWh", times, values, "ci.csv")
    with pytest.raises(ValidationError, match=r"series ci \(ci.csv\): row 6 \(2022-01-01 05:00 UTC\): carbon "
                                              r"intensity -500 gCO2/kWh; expected 0 to 5000 gCO2/kWh"):
        GridSeries(series, caiso_price())
    price = HourlySeries("p", "USD/MWh", times, values, "p.csv")
    grid = GridSeries(caiso_carbon_intensity(), price)  # negative prices happen on real markets
    assert grid.price.values.min() == -500.0


# ------------------------------------------------------------------------------ section 2: replay
def _trace(input_tokens: np.ndarray) -> Trace:
    n = len(input_tokens)
    return Trace(arrival_s=np.linspace(0.0, 599.0, n), input_tokens=np.asarray(input_tokens, dtype=np.int32),
                 output_tokens=np.full(n, 300, dtype=np.int32), name="t", duration_s=600.0)


def test_a_replay_of_zero_requests_is_refused(cli, tmp_path):
    from dynaplan.replay import prepare

    with pytest.raises(ValidationError, match="holds no requests: nothing to replay"):
        prepare(_trace(np.zeros(0)))
    code, err = cli("replay", "-t", "azure-code-2023", "--synthetic-days", "1e-9", "--policy", "SinglePool",
                    "--out", tmp_path / "out")
    assert code == 2 and "holds no requests: nothing to replay" in err and "nan" not in err


def test_requests_longer_than_the_profile_covers_never_meet_their_slo(prof):
    from dynaplan.replay import prepare, replay
    from dynaplan.replay.policies import SinglePool

    assert prof.classes.input_bins.max_tokens == 8192
    tokens = np.where(np.arange(400) % 4 == 0, 1_000_000_000, 3000)  # a quarter beyond 8,192 input tokens
    inp = prepare(_trace(tokens), profile=prof, inventory={"h100-80gb": 8})
    inside = replay(prepare(_trace(np.full(400, 3000)), profile=prof, inventory={"h100-80gb": 8}), SinglePool())
    assert inside.summary.slo_attainment > 0.9  # the same load, all in profile, meets its SLO
    s = replay(inp, SinglePool()).summary
    assert s.out_of_profile_requests == 100 and s.requests == 400
    assert s.slo_attainment <= 0.75 + 1e-12


# ------------------------------------------------------------------------------ section 2: reconfig
def test_valid_states_never_end_in_zero_division(prof):
    ll = ClusterState(servers=(Server(id="s0", hardware="h100-80gb"),),
                      instances=(Instance(id="a", pool="LL", tp=2, gpus={"s0": (0, 1)}, freq_mhz=800,
                                          load_rps={"LL": 1.0}),))
    group = plan_of(prof, ll).pools[0].groups[0]
    assert group.power_w_per_instance > 0 and group.slo_margin < 0  # cannot meet LL's SLO: said so
    hw = H100_80GB.model_copy(update={"clock_levels_mhz": (777, 1500)})
    odd = ClusterState(servers=(Server(id="s0", hardware="h100-80gb"),), hardware={"h100-80gb": hw},
                       instances=(Instance(id="a", pool="SS", tp=2, gpus={"s0": (0, 1)}, freq_mhz=777,
                                           load_rps={"SS": 1.0}),))
    with pytest.raises(ValidationError, match="h100-80gb TP2 at 777 MHz, class SS: no profile rows"):
        plan_of(prof, odd)  # its power is unknown, not 0 W


def test_times_are_bounded_so_transitions_cannot_round_away(prof, planner, cli, tmp_path):
    with pytest.raises(ValidationError, match=r"state.json: time_s 1e\+308 s; expected a finite time within "):
        ClusterState.from_json(json.dumps({**_state(), "time_s": 1e308}), "state.json")
    with pytest.raises(ValidationError, match=r"booting: until_s 1e\+300 s"):
        ClusterState.from_json(json.dumps(_state(in_flight={"kind": "booting", "until_s": 1e300})), "state.json")
    assert MAX_TIME_S + 420.0 > MAX_TIME_S  # a start still moves the clock at the limit
    st = ClusterState.from_json(json.dumps(_state()), "state.json")
    with pytest.raises(ValidationError, match=r"now_s 1e\+300 s: exceeds the limit of 1e\+12 s"):
        diff(prof, st, DEFAULT_SLOS, planner.plan({"SS": 1.0}), None, now_s=1e300)
    path = tmp_path / "state.json"
    path.write_text(json.dumps(_state()))
    fc = tmp_path / "fc.csv"
    fc.write_text("request_class,load_rps\nSS,1\n")
    code, err = cli("plan-reconfig", "--state", path, "--forecast", fc, "--now-s", "1e300")
    assert code == 2 and "--now-s 1e+300 s: exceeds the limit of 1e+12 s" in err


def test_huge_forecasts_are_refused_before_any_arithmetic(planner):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy overflow warning would fail the test
        with pytest.raises(ValidationError, match=r"forecast: class LL load 1e\+308 req/s: exceeds the limit"):
            planner.plan({"LL": 1e308})
        with pytest.raises(ValidationError, match=r"forecast: class LL load 1e\+308 req/s: exceeds the limit"):
            planner.diagnose({"LL": 1e308})


# ------------------------------------------------------------------------------ section 4
def test_planner_arguments_are_refused_with_dynaplan_errors_naming_them(prof):
    with pytest.raises(ValidationError, match="Planner: argument inventory: int 40; expected Inventory or a mapping"):
        Planner(prof, 40)
    from dynaplan.solvers import Backend

    with pytest.raises(ValidationError, match=r"backend 'gurobi': unknown solver backend; expected one of "
                                              + re.escape(str([b.value for b in Backend]))):
        Planner(prof, {"h100-80gb": 4}, backend="gurobi")
    with pytest.raises(InputError) as exc:
        Planner(prof, {"h100-80gb": 2.5})
    assert str(exc.value) == ("Inventory.servers['h100-80gb']: Input should be a valid integer, got a number with a "
                              "fractional part (got 2.5)")
    with pytest.raises(ValidationError, match=r"model 'gpt': not in the profile .*; it holds \['llama2-70b'\]"):
        Planner(prof, {"h100-80gb": 4}, model="gpt")
    with pytest.raises(ValidationError, match="Planner: argument profile: str 'profile.csv'; expected Profile"):
        Planner("profile.csv", {"h100-80gb": 4})
    with pytest.raises(ValidationError, match=r"Inventory.servers\[1\] \(the key\): Input should be a valid string"):
        Planner(prof, {1: 4})


def test_public_functions_refuse_arguments_of_the_wrong_type_naming_them(prof):
    from dynaplan.errors import NotFoundError
    from dynaplan.replay import prepare, replay
    from dynaplan.workload.classify import classify_trace
    from dynaplan.workload.loading import load_trace

    tr = _trace(np.full(10, 300))
    cases = [(lambda: load_trace(None), "load_trace: argument source: NoneType None; expected a string or a path"),
             (lambda: classify_trace(tr, accuracy=True), "classify_trace: argument accuracy: bool True; expected a number"),
             (lambda: prepare(tr, profile="p.csv"), "prepare: argument profile: str 'p.csv'; expected Profile or None"),
             (lambda: replay(prepare(tr, profile=prof), "SinglePool"),
              "replay: argument policy: str 'SinglePool'; expected Policy")]
    with pytest.raises(ValidationError, match="state must be a ClusterState, got str"):
        plan_of(prof, "state.json")
    for call, expect in cases:
        with pytest.raises(ValidationError) as exc:
            call()
        assert str(exc.value) == expect
    with pytest.raises(NotFoundError, match=r"no profile rows for \{'model': 'llama2-70b', 'hardware': 'h100', 'tp': 8,"):
        prof.power_w("h100", 8, 1980, "SS", 1.0)  # also a KeyError, for callers that catch one


@pytest.mark.parametrize("forecast, expect", [
    ({"SS": "abc"}, r"forecast: class SS load 'abc' \(str\): expected a number \(req/s\)"),
    ({"SS": None}, r"forecast: class SS load None \(NoneType\): expected a number \(req/s\)"),
    ("SS", r"Planner.plan: argument forecast: str 'SS'; expected a mapping or Series"),
    ({"SS": float("nan")}, r"forecast: class SS load nan: expected a finite number"),
    ({"XX": 1.0}, r"forecast: unknown request class\(es\) \['XX'\]"),
])
def test_bad_forecasts_raise_dynaplan_errors(planner, forecast, expect):
    with pytest.raises(ValidationError, match=expect):
        planner.plan(forecast)


def test_option_models_raise_one_line_input_errors_naming_model_and_field():
    cases = [(lambda: SolveOptions(time_limit_s=0), "SolveOptions.time_limit_s: Input should be greater than 0 (got 0)"),
             (lambda: PlannerOptions(spill="sideways"),
              "PlannerOptions.spill: must be 'none', 'next' or 'larger', got 'sideways'"),
             (lambda: PlannerOptions(load_segment=3), "PlannerOptions.load_segment: Extra inputs are not permitted"),
             (lambda: SolveOptions.model_validate_json('{"threads": 0}'),
              "SolveOptions.threads: Input should be greater than or equal to 1 (got 0)")]
    for make, expect in cases:
        with pytest.raises(InputError) as exc:
            make()
        assert str(exc.value).startswith(expect), str(exc.value)
        assert "\n" not in str(exc.value) and isinstance(exc.value, DynaplanError)
        assert exc.value.errors()[0]["loc"]  # structured errors stay available (the CLI names flags with them)


def test_trace_load_names_the_window_flag(cli):
    code, err = cli("trace", "load", "-t", "azure-code-2023", "--window", "0")
    assert code == 2 and err == "dynaplan: error: --window '0': duration '0' must be positive"


def test_huge_inputs_are_quoted_as_bounded_excerpts(prof):
    big = list(range(2_000_000))
    assert excerpt(big) == "[0, 1, 2, 3, 4, 5, 6, 7, ... (2,000,000 items)]"
    with pytest.raises(InputError) as exc:
        Planner(prof, {"h100-80gb": big})
    assert len(str(exc.value)) < 200 and "(2,000,000 items)" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        ClusterState.from_json(json.dumps(_state(tp=2, gpus={"s0": big})), "state.json")
    assert len(str(exc.value)) < 200 and "holds 2000000 GPU(s) [0, 1, 2, 3, 4, 5, 6, 7, ... (2,000,000 items)]" \
        in str(exc.value)
    msg = str(ValidationError("x" * 10_000_000))  # any message, whatever it quotes, stays bounded
    assert len(msg) < 2100 and "characters omitted" in msg
