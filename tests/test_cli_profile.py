"""``dynaplan profile show|validate|export``: run through ``main`` (in process and as a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dynaplan.cli import main
from dynaplan.cli.profile import max_load_frame
from dynaplan.domain import A100_80GB, DEFAULT_SLOS, H100_80GB
from dynaplan.profiles import Profile
from dynaplan.profiles.profile import DEFAULT_PROFILE_FILE
from dynaplan.testing import synthetic_profile, synthetic_profile_table

DEFAULT_FILE = Path(str(resources.files("dynaplan.profiles") / "data" / DEFAULT_PROFILE_FILE))
needs_default = pytest.mark.skipif(
    not DEFAULT_FILE.is_file(), reason=f"bundled default profile {DEFAULT_FILE.name} not generated yet"
)


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run ``dynaplan ARGS`` through the console-script entry point; return (code, out, err)."""
    monkeypatch.setenv("COLUMNS", "160")

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["dynaplan", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="module")
def profile() -> Profile:
    return synthetic_profile(seed=5, hardware=(H100_80GB, A100_80GB), n_loads=4)


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory, profile) -> Path:
    return profile.write(tmp_path_factory.mktemp("cli") / "synthetic.csv")


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("dynaplan: error: ")
    return lines[0]


# ---------------------------------------------------------------- show
def test_show_prints_summary_and_max_load_tables(cli, csv_path, profile):
    code, out, err = cli("profile", "show", csv_path)
    assert code == 0, err
    assert f"{len(profile)} / {len(profile.groups)}" in out
    for text in ("llama2-70b", "h100-80gb", "a100-80gb", "800, 1000, 1200, 1400, 1600, 1800, 1980",
                 "810, 1005, 1200, 1410", "SS, SM, SL, MS, MM, ML, LS, LM, LL", "TP8", "LL"):
        assert text in out, text
    assert "at 1980 MHz" in out and "at 1410 MHz" in out


def test_show_filters_hardware_and_prints_slos(cli, csv_path):
    code, out, _ = cli("profile", "show", csv_path, "--hardware", "a100-80gb", "--slo-default")
    assert code == 0
    assert "at 1410 MHz" in out and "at 1980 MHz" not in out
    assert "Default P99 SLOs" in out and "2000" in out


def test_show_unknown_hardware_is_one_line_error(cli, csv_path):
    code, _, err = cli("profile", "show", csv_path, "--hardware", "b200")
    assert code == 2
    assert "b200" in one_line_error(err)


def test_max_load_frame_matches_profile_queries(profile):
    frame = max_load_frame(profile)
    assert len(frame) == 2 * 3 * 9  # (hardware, tp, class)
    assert not frame.duplicated(["hardware", "tp", "request_class"]).any()
    ml = profile.max_load_under_slo(DEFAULT_SLOS).set_index(["hardware", "tp", "freq_mhz", "request_class"])
    for r in frame.itertuples(index=False):
        hw = {h.name: h for h in (H100_80GB, A100_80GB)}[r.hardware]
        assert r.freq_mhz == hw.max_clock_mhz
        assert r.max_load_rps == ml.loc[(r.hardware, r.tp, r.freq_mhz, r.request_class), "max_load_rps"]
        if r.max_load_rps > 0:
            best = profile.min_energy_clock([r.max_load_rps], DEFAULT_SLOS, hardware=r.hardware, tp=r.tp,
                                            request_class=r.request_class).iloc[0]
            assert best["meets_slo"] and r.best_freq_mhz == best["freq_mhz"]
            assert r.best_energy_per_request_j <= r.energy_per_request_j * (1 + 1e-12)
        else:
            assert np.isnan(r.best_freq_mhz)
    # the largest TP meets the SLO at light load for every class (a property of synthetic profiles)
    assert (frame.loc[frame["tp"] == 8, "max_load_rps"] > 0).all()


# ---------------------------------------------------------------- validate
def test_validate_ok(cli, csv_path, profile):
    code, out, _ = cli("profile", "validate", csv_path)
    assert code == 0
    assert out.strip() == f"OK: {len(profile)} rows, {len(profile.groups)} groups"


def test_validate_partial_counts_missing_grid_points(cli, tmp_path):
    t = synthetic_profile_table(seed=1, n_loads=3)
    t = t[~((t["tp"] == 4) & (t["freq_mhz"] == 1000))]
    path = tmp_path / "partial.csv"
    t.to_csv(path, index=False)
    code, _, err = cli("profile", "validate", path)
    assert code == 2
    assert "9 grid point(s) a planner needs are missing" in one_line_error(err)
    code, out, _ = cli("profile", "validate", path, "--partial")
    assert code == 0
    assert out.startswith(f"OK: {len(t)} rows, {len(t) // 3} groups; 9 missing grid point(s)")
    assert "tp=4 freq_mhz=1000" in out


def test_validate_bad_row_names_file_and_row(cli, tmp_path):
    t = synthetic_profile_table(seed=1, n_loads=3)
    t.loc[7, "power_w"] = -1.0
    path = tmp_path / "bad.csv"
    t.to_csv(path, index=False)
    code, _, err = cli("profile", "validate", path)
    assert code == 2
    line = one_line_error(err)
    assert str(path) in line and "row 8 (line 9), field 'power_w'" in line


# ---------------------------------------------------------------- export
@pytest.mark.parametrize("name, fmt", [("out.csv", None), ("out.parquet", None), ("out.csv.gz", "csv"),
                                       ("out", "parquet")])
def test_export_round_trips(cli, csv_path, profile, tmp_path, name, fmt):
    args = ["profile", "export", tmp_path / name, "--from", csv_path]
    if fmt:
        args += ["--format", fmt]
    code, out, err = cli(*args)
    assert code == 0, err
    written = tmp_path / (name if "." in name else f"{name}.{fmt}")
    assert written.is_file() and str(written) in out
    pd.testing.assert_frame_equal(Profile.read(written).table, profile.table, check_exact=True)


@pytest.mark.parametrize("name, fmt", [("out.csv", "parquet"), ("out.txt", None), ("missing-dir/out.csv", None)])
def test_export_bad_target_is_one_line_error(cli, csv_path, tmp_path, name, fmt):
    args = ["profile", "export", tmp_path / name, "--from", csv_path] + (["--format", fmt] if fmt else [])
    code, _, err = cli(*args)
    assert code == 2
    one_line_error(err)
    assert not (tmp_path / name).exists()


def test_export_into_an_existing_directory_writes_inside_it(cli, csv_path, profile, tmp_path):
    d = tmp_path / "profiles"
    d.mkdir()
    (tmp_path / "profiles.csv").write_text("precious\n")  # the file the old behaviour clobbered
    code, out, err = cli("profile", "export", d, "--from", csv_path)
    assert code == 0, err
    assert (tmp_path / "profiles.csv").read_text() == "precious\n"
    pd.testing.assert_frame_equal(Profile.read(d / "profile.csv").table, profile.table, check_exact=True)
    code, _, err = cli("profile", "export", d, "--from", csv_path, "--format", "parquet")
    assert code == 0, err and (d / "profile.parquet").is_file()


def test_export_of_a_bad_profile_keeps_the_existing_file(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("model,hardware\nx,y\n")
    target = tmp_path / "out.csv"
    target.write_text("precious\n")
    code, _, err = cli("profile", "export", target, "--from", bad)
    assert code == 2
    one_line_error(err)
    assert target.read_text() == "precious\n" and sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out.csv"]


# ---------------------------------------------------------------- the bundled default
@needs_default
def test_default_profile_show_validate_export(cli, tmp_path):
    code, out, err = cli("profile", "show")
    assert code == 0, err
    assert "bundled:" in out and "llama2-70b" in out
    code, out, _ = cli("profile", "validate", DEFAULT_FILE)
    assert code == 0 and out.startswith("OK: ")
    code, _, err = cli("profile", "export", tmp_path / "default.parquet")
    assert code == 0, err
    pd.testing.assert_frame_equal(Profile.read(tmp_path / "default.parquet").table, Profile.default().table)


# ---------------------------------------------------------------- as a real process
def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dynaplan", *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def test_python_m_dynaplan_runs(csv_path, profile):
    res = run_module("profile", "validate", csv_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"OK: {len(profile)} rows, {len(profile.groups)} groups"


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage-parquet", "nan"])
def test_bad_file_exits_2_with_one_line(tmp_path, kind):
    if kind == "missing":
        path = tmp_path / "nope.csv"
    elif kind == "empty":
        path = tmp_path / "empty.csv"
        path.write_text("")
    elif kind == "garbage-parquet":
        path = tmp_path / "junk.parquet"
        path.write_bytes(b"\x00\x01 not parquet at all")
    else:
        t = synthetic_profile_table(seed=2, n_loads=2)
        t.loc[3, "ttft_p99_ms"] = np.nan
        path = tmp_path / "nan.csv"
        t.to_csv(path, index=False)
    command = "validate" if kind in ("missing", "nan") else "show"
    res = run_module("profile", command, path)
    assert res.returncode == 2
    line = one_line_error(res.stderr)
    assert str(path) in line
    assert res.stdout == ""
