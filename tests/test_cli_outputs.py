"""``dynaplan.cli.outputs.OutputSet``: outputs checked up front, written to temporaries, committed together."""

from __future__ import annotations

import os

import pytest

from dynaplan.cli.outputs import OutputSet
from dynaplan.errors import ValidationError


def test_nothing_replaces_an_existing_file_until_commit(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "sub" / "b.csv"
    a.write_text("old")
    with OutputSet() as outs:
        outs.file(a, "--a")
        outs.in_dir(tmp_path / "sub", "b.csv", "--out")
        outs.write_text(a, "new")
        outs.write_text(b, "x,y\n")
        assert a.read_text() == "old" and not b.exists()
        assert outs.commit() == [a, b]
    assert a.read_text() == "new" and b.read_text() == "x,y\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "sub"]
    assert oct(a.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600


def test_a_failure_leaves_everything_as_it_was(tmp_path):
    a = tmp_path / "a.json"
    a.write_text("old")
    with pytest.raises(RuntimeError):
        with OutputSet() as outs:
            outs.file(a, "--a")
            outs.in_dir(tmp_path / "new" / "deeper", "b.csv", "--out")
            outs.write_text(a, "new")
            outs.write_text(tmp_path / "new" / "deeper" / "b.csv", "x")
            raise RuntimeError("the run failed")
    assert a.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # temporaries and created dirs gone


def test_bad_paths_are_refused_when_reserved(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("")
    outs = OutputSet()
    cases = [
        (lambda: outs.file(tmp_path / "d", "--json"), "--json .*is a directory"),
        (lambda: outs.file(tmp_path / "nope" / "x.json", "--json"), "does not exist"),
        (lambda: outs.file(tmp_path / "x.txt", "--csv", suffixes=(".csv", ".parquet")), "ending in .csv or .parquet"),
        (lambda: outs.directory(tmp_path / "f", "--out"), "exists and is not a directory"),
        (lambda: outs.in_dir(tmp_path, "d", "--out"), "is a directory; it would be replaced"),
    ]
    for call, pattern in cases:
        with pytest.raises(ValidationError, match=pattern):
            call()
    outs.file(tmp_path / "same.json", "--json")
    with pytest.raises(ValidationError, match="the same file as --json"):
        outs.file(tmp_path / "same.json", "--state-out")


def test_an_unwritable_directory_is_refused(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root may write anywhere: have the access check answer as for a user
            import dynaplan.cli.outputs as mod

            monkeypatch.setattr(mod.os, "access", lambda p, mode: os.path.realpath(p) != str(ro.resolve()))
        with pytest.raises(ValidationError, match="--json .*directory .*ro is not writable"):
            OutputSet().file(ro / "x.json", "--json")
        with pytest.raises(ValidationError, match="--out .*not writable"):
            OutputSet().in_dir(ro / "new", "x.csv", "--out")
    finally:
        ro.chmod(0o755)


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m
