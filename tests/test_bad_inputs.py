"""Bad input gives one clear line and exit 2 from the CLI, or a ValidationError from the library.

Each case names the file, row, field or flag at fault; none may end in a traceback, exit 0 or a
silently wrong result. Everything fails before any solve, so the module runs in seconds.
"""

from __future__ import annotations

import gzip
import json
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynaplan.cli import main
from dynaplan.domain import H100_80GB
from dynaplan.errors import ValidationError
from dynaplan.planning.inputs import read_forecast
from dynaplan.profiles import Profile
from dynaplan.reconfig import ClusterState
from dynaplan.testing import synthetic_profile
from dynaplan.workload.loading import load_trace
from dynaplan.workload.trace import PARQUET_METADATA_KEY

TRACE_HEADER = "arrival_s,input_tokens,output_tokens\n"


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run ``dynaplan ARGS`` through ``main``; return (exit code, stdout, the one stderr line)."""
    monkeypatch.setenv("COLUMNS", "160")

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["dynaplan", *map(str, args)])
        with pytest.raises(SystemExit) as exc:
            main()
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) <= 1, err
        return exc.value.code, out, lines[0] if lines else ""

    return run


def fails(cli, *args, expect: tuple[str, ...]) -> str:
    code, _, err = cli(*args)
    assert code == 2, err
    assert err.startswith("dynaplan: error: "), err
    for part in expect:
        assert part in err, err
    return err


@pytest.fixture(scope="module")
def profile_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    path = synthetic_profile(seed=1, hardware=(H100_80GB,), n_loads=3).write(d / "profile.csv")
    return path


@pytest.fixture
def garbage(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(256))[::-1] * 4)
    return path


# ------------------------------------------------------------------ usage errors


@pytest.mark.parametrize("args, expect", [
    (("plan", "--servers", "abc"), ("Invalid value for '--servers'", "plan --help")),
    (("nosuchcmd",), ("No such command 'nosuchcmd'",)),
    (("profile", "validate"), ("Missing argument 'path'",)),
    (("trace", "stats", "--seed", "-1"), ("Invalid value for '--seed'",)),
])
def test_usage_errors_are_one_line(cli, args, expect):
    fails(cli, *args, expect=expect)


# ------------------------------------------------------------------ profiles


def test_profile_read_errors_name_the_problem(cli, tmp_path, profile_csv, garbage):
    fails(cli, "profile", "validate", tmp_path, expect=("is a directory",))
    fails(cli, "profile", "validate", garbage, expect=("cannot read as a profile table",))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n1,2,3\n")  # pandas' message ends in a newline
    fails(cli, "profile", "validate", ragged, expect=("ParserError", "Expected 2 fields"))
    df = pd.read_csv(profile_csv)
    for col, value, expect in [("power_w", True, "field 'power_w': boolean value True; expected a number"),
                               ("tp", True, "field 'tp': boolean value True"),
                               ("tp", 2.5, "field 'tp': 2.5 is not an integer"),
                               ("tp", 1e20, "field 'tp': 1e+20 is out of range"),
                               ("power_w", -5.0, "field 'power_w': -5 must be > 0")]:
        bad = df.copy()
        bad[col] = bad[col].astype(object if isinstance(value, bool) else float)
        bad.loc[:, col] = value if isinstance(value, bool) else bad[col]
        if not isinstance(value, bool):
            bad.loc[3, col] = value
        path = tmp_path / "bad_profile.csv"
        bad.to_csv(path, index=False)
        err = fails(cli, "profile", "validate", path, expect=(expect,))
        assert "np." not in err


def test_profile_suffix_is_case_insensitive(cli, tmp_path, profile_csv):
    out = tmp_path / "exported.PARQUET"
    code, _, err = cli("profile", "export", out, "--from", profile_csv)
    assert code == 0, err
    assert pq.read_table(out).num_rows == len(Profile.read(profile_csv))  # parquet, not CSV in disguise
    assert len(Profile.read(out)) == pq.read_table(out).num_rows


# ------------------------------------------------------------------ traces


def _write(path, text: str):
    path.write_text(text)
    return path


def test_load_trace_rejects_unreadable_files(tmp_path, garbage):
    with pytest.raises(ValidationError, match="not a UTF-8 text CSV"):
        load_trace(garbage)
    bad_gz = tmp_path / "bad.csv.gz"
    bad_gz.write_bytes(b"not gzip at all")
    with pytest.raises(ValidationError, match="cannot read gzip file"):
        load_trace(bad_gz)
    cut = tmp_path / "cut.csv.gz"
    data = gzip.compress((TRACE_HEADER + "".join(f"{i},1,2\n" for i in range(50000))).encode())
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValidationError, match="cut.csv.gz: cannot read"):
        load_trace(cut)
    with pytest.raises(ValidationError, match="is a directory"):
        load_trace(tmp_path)


@pytest.mark.parametrize("meta, expect", [
    ("[1, 2]", "dynaplan metadata must be a JSON object, got list"),
    ('{"synthetic": "false"}', "dynaplan metadata 'synthetic' must be bool, got 'false'"),
    ('{"name": 5}', "dynaplan metadata 'name' must be str, got 5"),
    ('{"duration_s": -5}', "'duration_s' must be a finite number >= 0"),
])
def test_trace_metadata_is_checked(tmp_path, meta, expect):
    path = _write(tmp_path / "meta.csv", f"# dynaplan-trace {meta}\n{TRACE_HEADER}0,1,2\n1,1,2\n")
    with pytest.raises(ValidationError, match=r"meta.csv: line 1: ") as exc:
        load_trace(path)
    assert expect in str(exc.value)
    table = pa.table({"arrival_s": [0.0, 1.0], "input_tokens": [1, 2], "output_tokens": [1, 2]})
    pq.write_table(table.replace_schema_metadata({PARQUET_METADATA_KEY: meta.encode()}), tmp_path / "m.parquet")
    with pytest.raises(ValidationError, match="parquet schema") as exc:
        load_trace(tmp_path / "m.parquet")
    assert expect in str(exc.value)


def test_trace_values_are_reported_as_written(tmp_path):
    with pytest.raises(ValidationError, match=r"row 2 \(line 3\), field 'arrival_s': not a number, got 'nan'"):
        load_trace(_write(tmp_path / "nan.csv", TRACE_HEADER + "0,1,2\nnan,1,2\n"))
    with pytest.raises(ValidationError, match=r"field 'input_tokens': not a number, got 'NA'"):
        load_trace(_write(tmp_path / "na.csv", TRACE_HEADER + "0,1,2\n1,NA,2\n"))
    pq.write_table(pa.table({"arrival_s": [0.0, None], "input_tokens": [1, 2], "output_tokens": [1, 2]}),
                   tmp_path / "null.parquet")
    with pytest.raises(ValidationError, match=r"row 2, field 'arrival_s': missing value, got ''"):
        load_trace(tmp_path / "null.parquet")
    with pytest.raises(ValidationError, match="column 'arrival_s' \\(arrival\\) appears 2 times"):
        load_trace(_write(tmp_path / "dup.csv", "arrival_s,input_tokens,output_tokens,arrival_s\n0,1,2,3\n"))
    assert len(load_trace(tmp_path / "nan.csv", repair=True)) == 1  # --repair still drops the row


def test_trace_cli_checks_outputs_windows_and_sizes(cli, tmp_path):
    one = _write(tmp_path / "one.csv", TRACE_HEADER + "0,10,10\n")
    fails(cli, "trace", "stats", "-t", tmp_path / "garbage", expect=("no such file",))
    fails(cli, "trace", "stats", "-t", "azure-code-2023", "--out", tmp_path / "x.csv",
          expect=("--out", "into a directory"))  # stats writes its tables into a directory
    fails(cli, "trace", "stats", "-t", "azure-code-2023", "--out", _write(tmp_path / "f", "") / "x",
          expect=("--out", "is not a directory"))
    fails(cli, "trace", "load", "-t", "azure-code-2023", "--window", "1e-9s",
          expect=("--window 1e-9s: cuts the", "windows (at most 10,000,000)"))
    fails(cli, "trace", "generate", "--days", "1e6", expect=("requests (at most 100,000,000)",))
    fails(cli, "trace", "generate", "--days", "1", "--source", one,
          expect=("trace 'one.csv' spans 0 s (1 request(s)); a rate cannot be taken from it",))
    fails(cli, "trace", "generate", "--days", "0.01", "--out", tmp_path / "x.txt", expect=("unknown trace format",))


# ------------------------------------------------------------------ forecasts and plan


@pytest.mark.parametrize("text, expect", [
    ("", "empty file"),
    ("request_class,load_rps\n", "no data rows"),
    ("request_class,load_rps\nSS,true\n", "row 1 (line 2), field 'load_rps': 'true'; expected a finite number >= 0"),
    ("request_class,load_rps\nSS,nan\n", "field 'load_rps': 'nan'; expected a finite number >= 0"),
    ("request_class,load_rps\nSS,-1\n", "field 'load_rps': '-1'"),
    ("request_class,load_rps\nSS,1,extra\n", "row 1 (line 2): 3 field(s); the header has 2"),
    ("request_class,load_rps,request_class\nSS,1,LL\n", "column(s) ['request_class'] appear more than once"),
    ("request_class,load_rps\n,3\n", "field 'request_class': empty value"),
    ("request_class;load_rps\nSS;1\n", "missing column(s) ['request_class', 'load_rps']"),
    ("request_class,load_rps\nSS,1\nSS,2\n", "row 2 (line 3): class SS appears twice"),
])
def test_read_forecast_rejects(tmp_path, text, expect):
    path = _write(tmp_path / "fc.csv", text)
    with pytest.raises(ValidationError) as exc:
        read_forecast(path)
    assert str(exc.value).startswith(str(path)) and expect in str(exc.value)


def test_read_forecast_strips_and_rejects_directories(tmp_path):
    assert read_forecast(_write(tmp_path / "fc.csv", "request_class,load_rps\n SS , 1.5\n\n")) == {"SS": 1.5}
    with pytest.raises(ValidationError, match="is a directory"):
        read_forecast(tmp_path)


def test_plan_flags_are_checked_before_work(cli, tmp_path):
    fc = _write(tmp_path / "fc.csv", "request_class,load_rps\nSS,2\n")
    for args, expect in [
        (("--time-limit-s", "0"), "--time-limit-s 0.0: expected a positive, finite number of seconds"),
        (("--time-limit-s", "inf"), "--time-limit-s inf"),
        (("--spill", "sideways"), "--spill 'sideways': spill must be 'none', 'next' or 'larger'"),
        (("--target-mean-rps", "-1"), "--rate -1.0: expected a positive"),  # --rate is its short name
        (("--servers", "-3"), "--servers -3: expected >= 0"),
        (("--json", tmp_path), "--json"),
    ]:
        fails(cli, "plan", "--forecast", fc, *args, expect=(expect,))
    fails(cli, "plan", "--forecast", _write(tmp_path / "empty.csv", "request_class,load_rps\n"),
          expect=("no data rows",))
    fails(cli, "plan", "--peak-window", "1e-9s", expect=("--peak-window 1e-9s: cuts the",))
    fails(cli, "plan", "--peak-window", "2d", expect=("--peak-window 2d: longer than the trace",))


# ------------------------------------------------------------------ reconfiguration


def _state(tmp_path, instance: dict | None = None, **extra):
    data = {"servers": [{"id": "s0", "hardware": "h100-80gb"}],
            "instances": [] if instance is None else [{"id": "i0", "pool": "SS", "tp": 2, "gpus": {"s0": [0, 1]},
                                                        "freq_mhz": 1980, **instance}], **extra}
    path = tmp_path / "state.json"
    path.write_text(json.dumps(data))
    return path


def test_state_rejects_tp_degrees_the_hardware_lacks(tmp_path):
    with pytest.raises(ValidationError, match=r"instance i0: TP3 is not a TP degree of h100-80gb \[1, 2, 4, 8\]"):
        ClusterState.read(_state(tmp_path, {"tp": 3, "gpus": {"s0": [0, 1, 2]}}))
    with pytest.raises(ValidationError, match="is a directory"):
        ClusterState.read(tmp_path)


def test_plan_reconfig_rejects_bad_states_and_flags(cli, tmp_path, profile_csv, garbage):
    fc = _write(tmp_path / "fc.csv", "request_class,load_rps\nSS,1\n")
    base = ("plan-reconfig", "--forecast", fc, "--profile", profile_csv)
    fails(cli, *base, "--state", _state(tmp_path, servers=[]), expect=("the state has no servers",))
    fails(cli, *base, "--state", _state(tmp_path, {"pool": "XX"}),
          expect=("instance i0: pool 'XX' is not a request class",))
    fails(cli, *base, "--state", _state(tmp_path, {"load_rps": {"XX": 1.0}}),
          expect=("instance i0: load_rps has unknown class 'XX'",))
    good = _state(tmp_path)
    fails(cli, *base, "--state", good, "--costs", garbage, expect=("cannot read transition-costs file",))
    fails(cli, *base, "--state", good, "--now-s", "nan", expect=("--now-s nan: expected a finite number",))
    fails(cli, *base, "--state", good, "--spill", "x", expect=("--spill 'x':",))
    fails(cli, *base, "--state", good, "--out", fc, expect=("--out", "exists and is not a directory"))


# ------------------------------------------------------------------ replay


def test_replay_flags_are_checked_before_work(cli, tmp_path):
    base = ("replay", "-t", "azure-code-2023", "--policy", "SinglePool", "--out", tmp_path / "out")
    fails(cli, *base, "--servers", "0", expect=("--servers 0: expected at least 1 server",))
    fails(cli, "replay", "--policy", "", "--out", tmp_path, expect=("--policy '': expected policy names",))
    fails(cli, *base, "--carbon-column", "nope", expect=("--carbon-column 'nope': only applies with --carbon",))
    fails(cli, *base, "--plot", tmp_path / "p.png", "--plot-policy", "nope",
          expect=("--plot-policy 'nope': not among",))
    fails(cli, *base, "--pool-epoch", "0", expect=("--pool-epoch '0':",))
    out_file = _write(tmp_path / "file", "")
    fails(cli, "replay", "--policy", "SinglePool", "--out", out_file, expect=("exists and is not a directory",))


# ------------------------------------------------------------------ library-level limits


def test_library_window_count_is_limited():
    from dynaplan.workload import MAX_WINDOWS, aggregate_load, envelope_ratios, epoch_peaks, measure_burstiness
    from dynaplan.cli import options

    assert options.MAX_WINDOWS is MAX_WINDOWS == 10_000_000  # one limit, shared by the CLI
    tr = load_trace("azure-conv-2023")
    span = f"cuts the {tr.duration_s:g} s of trace 'azure-conv-2023' into"
    with pytest.raises(ValidationError) as exc:
        aggregate_load(tr, window_s="1e-9s")
    assert str(exc.value).startswith("window_s=1e-09 s: ") and span in str(exc.value)
    assert "3.5e+12 windows (at most 10,000,000)" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        epoch_peaks(tr, epoch_s="30min", inner_window_s="1e-9s")
    assert str(exc.value).startswith("inner_window_s=1e-09 s: ") and span in str(exc.value)
    with pytest.raises(ValidationError, match=r"epoch_s=1e\+12 s holds 1e\+12 inner windows of 1 s "
                                              r"\(at most 10,000,000\)"):
        epoch_peaks(tr, epoch_s=1e12, inner_window_s=1.0)
    with pytest.raises(ValidationError) as exc:
        measure_burstiness(tr, (1e-9,))
    assert str(exc.value).startswith("burstiness window 1e-09 s: ") and span in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        envelope_ratios(tr, 1e-9)
    assert span in str(exc.value)


def test_library_replay_prepare_limits_windows():
    from dynaplan.replay.engine import ReplayOptions, prepare

    tr = load_trace("azure-code-2023")
    opts = ReplayOptions(window_s=1e-9, pool_epoch_s=1e-9, cluster_epoch_s=1e-9, rate_window_s=1e-9)
    with pytest.raises(ValidationError) as exc:
        prepare(tr, options=opts)
    assert str(exc.value).startswith("options.window_s=1e-09 s: cuts the ")
    assert "trace 'azure-code-2023'" in str(exc.value) and "(at most 10,000,000)" in str(exc.value)


def test_library_synthetic_size_and_rate_source():
    from dynaplan.cli import options
    from dynaplan.workload import MAX_SYNTHETIC_REQUESTS, BurstSpec, Trace, generate_trace

    assert options.MAX_SYNTHETIC_REQUESTS is MAX_SYNTHETIC_REQUESTS == 100_000_000
    for source in ("azure-conv-2023", load_trace("azure-conv-2023")):
        with pytest.raises(ValidationError) as exc:
            generate_trace(source, days=1e6)
        assert "1e+06 synthetic day(s) at 45.1455 req/s make about 3.9e+12 requests" in str(exc.value)
        assert "(at most 100,000,000)" in str(exc.value)
    with pytest.raises(ValidationError, match=r"make about 8\.64e\+10 requests \(at most 100,000,000\)"):
        generate_trace("azure-code-2023", days=1000, mean_rate_rps=1000.0)
    one = Trace(arrival_s=[0.0], input_tokens=[10], output_tokens=[10], name="one.csv")
    with pytest.raises(ValidationError) as exc:
        generate_trace(one, days=1)
    assert str(exc.value) == "source trace 'one.csv' spans 0 s (1 request(s)); a rate cannot be taken from it"
    assert "nan" not in str(exc.value)
    with pytest.raises(ValidationError, match="mean_rate_rps must be a positive number, got nan"):
        generate_trace(one, days=1, mean_rate_rps=float("nan"))
    with pytest.raises(ValidationError, match=r"burst.fast_window_s=1e-06 s cuts each generated day into "
                                              r"8\.64e\+10 windows \(at most 10,000,000\)"):
        generate_trace("azure-code-2023", days=1, burst=BurstSpec(fast_window_s=1e-6, slow_window_s=60.0))


def test_replay_options_errors_carry_the_field():
    from dynaplan.errors import InputError
    from dynaplan.replay.engine import ReplayOptions

    for kwargs, field, expect in [
        ({"pool_epoch_s": 7.0}, "pool_epoch_s", "pool_epoch_s must be a whole multiple of window_s (5 s); got 7 s"),
        ({"cluster_epoch_s": 420.0}, "cluster_epoch_s",
         "cluster_epoch_s must be a whole multiple of pool_epoch_s (300 s); got 420 s"),
        ({"rate_window_s": 1.0}, "rate_window_s", "rate_window_s must be >= window_s (5 s); got 1 s"),
    ]:
        with pytest.raises(InputError) as exc:
            ReplayOptions(**kwargs)
        err = exc.value.errors()[0]
        assert err["loc"] == (field,) and expect in err["msg"]
        assert str(exc.value).startswith(f"ReplayOptions.{field}: ")
        assert isinstance(exc.value, ValueError)


def test_replay_cli_names_epoch_and_window_flags(cli, tmp_path):
    base = ("replay", "-t", "azure-code-2023", "--policy", "SinglePool", "--out", tmp_path / "out")
    fails(cli, *base, "--pool-epoch", "7s",
          expect=("dynaplan: error: --pool-epoch '7s': must be a whole multiple of --window (5 s); got 7 s",))
    fails(cli, *base, "--cluster-epoch", "7min",
          expect=("--cluster-epoch '7min': must be a whole multiple of --pool-epoch (300 s); got 420 s",))
    fails(cli, *base, "--rate-window", "1s", expect=("--rate-window '1s': must be >= --window (5 s); got 1 s",))
    fails(cli, *base, "--window", "1e-9s",
          expect=("--window 1e-9s: cuts the", "trace 'azure-code-2023'", "windows (at most 10,000,000)"))
    fails(cli, *base, "--synthetic-days", "1e6", expect=("requests (at most 100,000,000)",))


@pytest.mark.parametrize("kwargs, expect", [
    ({"load_rps": "abc"}, "load_rps 'abc' (str): expected a number (req/s)"),
    ({"load_rps": None}, "load_rps None (NoneType): expected a number"),
    ({"load_rps": float("nan")}, "load_rps nan: expected a finite number"),
    ({"load_rps": -1.0}, "load_rps -1 req/s: expected >= 0"),
    ({"load_rps": [1.0, "x"]}, "load_rps[1] 'x' (str)"),
    ({"load_rps": (3.0, True)}, "load_rps[1] True (boolean)"),
    ({"tp": "abc"}, "tp 'abc' (str)"),
    ({"tp": True}, "tp True (boolean)"),
    ({"freq_mhz": 1980.5}, "freq_mhz 1980.5: expected a whole number"),
])
def test_profile_queries_name_the_bad_argument(kwargs, expect):
    """Every query method checks its arguments: one line naming the argument, never a numpy
    error, a NaN answer or a silently truncated clock."""
    prof = Profile.default()
    args = dict(hardware="h100-80gb", tp=4, freq_mhz=1980, request_class="SS", load_rps=1.0) | kwargs
    for query in (prof.power_w, prof.ttft_p99_ms, prof.tbt_p99_ms, prof.energy_per_request_j):
        with pytest.raises(ValidationError, match=expect.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                           .replace("]", r"\]")):
            query(**args)
    if "load_rps" in kwargs and not isinstance(kwargs["load_rps"], (list, tuple)):
        with pytest.raises(ValidationError, match="load_rps"):
            prof.min_energy_clock(kwargs["load_rps"])
    with pytest.raises(ValidationError, match="group_id"):
        prof.interpolate("power_w", 10**9, 1.0)


def test_placement_of_a_state_at_the_server_limit_is_fast():
    """A state of MAX_STATE_SERVERS servers places by the greedy heuristic without a scan of
    every block per instance (it took minutes): the same choices as that scan, checked here on
    the placement's own invariants (every planned instance placed once on free aligned GPUs)."""
    from dynaplan.limits import MAX_STATE_SERVERS
    from dynaplan.planning import Planner
    from dynaplan.reconfig import PlacementOptions, TransitionCosts
    from dynaplan.reconfig.placement import _greedy, _Problem

    prof = Profile.default()
    n = MAX_STATE_SERVERS
    pl = Planner(prof, {"h100-80gb": n})
    scale = n / 8 * 5
    now = pl.plan({"SS": 20.0 * scale, "MS": 10.0 * scale, "LL": 1.0 * scale})
    target = pl.plan({"SS": 8.0 * scale, "MS": 25.0 * scale, "SL": 2.0 * scale})
    state = ClusterState.from_plan(now, prof.hardware, servers={"h100-80gb": n})
    pb = _Problem(state, target, TransitionCosts(), PlacementOptions(use_solver=False))
    for reuse in (True, False):
        sol = _greedy(pb, reuse)
        assert sol is not None
        assert len(sol) == sum(g.count for g in pb.groups)
        taken = [(s, q) for (_, s, b) in sol for q in b]
        assert len(taken) == len(set(taken))  # no GPU twice
        for (gi, s, b), src in sol.items():
            assert len(b) == pb.groups[gi].tp and pb.servers[s].hardware == pb.groups[gi].hardware
            if src is not None:
                assert tuple(sorted(pb.insts[src].gpu_indices)) == b  # kept in place
    from dynaplan.reconfig.placement import place

    placed = place(state, target)  # CP-SAT is not tried at this size, and the placement says so
    assert placed.method == "greedy" and "MAX_PLACEMENT_SOLVER_BLOCKS" in placed.message
    assert len(placed.placed) == sum(g.count for g in pb.groups)
