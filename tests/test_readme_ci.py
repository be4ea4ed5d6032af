"""The README opens with exactly two commands, and the second is exactly what ``.ci/run`` runs."""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"


def opening_commands() -> list[str]:
    """The commands of the fenced block right after the title and the one-paragraph pitch."""
    lines = README.read_text().splitlines()
    assert lines[0].startswith("# "), "README must start with its title"
    i = 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    pitch = i
    while i < len(lines) and lines[i].strip():
        assert not lines[i].startswith(("```", "#")), f"README line {i + 1}: expected the pitch paragraph"
        i += 1
    assert i > pitch, "README needs a one-paragraph pitch after the title"
    while i < len(lines) and not lines[i].strip():
        i += 1
    assert i < len(lines) and lines[i].startswith("```"), (
        f"README line {i + 1}: the two commands must follow the pitch directly"
    )
    end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
    return [ln for ln in lines[i + 1:end] if ln.strip()]


def ci_commands() -> list[str]:
    """What .ci/run executes, leaving out the shebang, comments, shell options and the cd to the root."""
    out = []
    for ln in CI_RUN.read_text().splitlines():
        s = ln.strip()
        if not s or s.startswith("#") or s.startswith("set ") or s.startswith("cd "):
            continue
        out.append(s)
    return out


def test_readme_opens_with_exactly_two_commands():
    cmds = opening_commands()
    assert len(cmds) == 2, cmds
    main_cmd, test_cmd = cmds
    for cmd in cmds:
        assert cmd.startswith("python3 -m venv .venv && "), cmd
        shlex.split(cmd)  # well-formed shell words
    assert "pip install -q . " in main_cmd and main_cmd.endswith("dynaplan plan")
    assert "'.[test]'" in test_cmd and "pytest" in test_cmd


def test_ci_runs_exactly_the_readme_test_command():
    assert ci_commands() == [opening_commands()[1]]


def test_ci_script_is_strict_bash_and_executable():
    text = CI_RUN.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") or text.startswith("#!/bin/bash\n")
    assert re.search(r"^set -euo pipefail$", text, re.M)
    assert os.access(CI_RUN, os.X_OK), ".ci/run must be executable"


def test_readme_commands_match_the_package():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["dynaplan"] == "dynaplan.cli:main"
    test_extra = " ".join(meta["project"]["optional-dependencies"]["test"])
    assert "pytest" in test_extra and "hypothesis" in test_extra
    # .venv, which both commands create, must not be committed
    assert ".venv/" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("sub", ["show", "validate", "export"])
def test_documented_profile_commands_exist(sub):
    from dynaplan.cli.profile import app

    names = {c.name for c in app.registered_commands}
    assert sub in names
    assert f"dynaplan profile {sub}" in README.read_text()
