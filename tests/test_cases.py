"""Behaviour by example: every folder under tests/cases/{valid,invalid}/ is one test.

A case holds `config.toml`, optionally `args` (extra `sglangc check` options, one per line) and
`expected.txt`: for an invalid case the exact stderr of `sglangc check config.toml`; for a valid one,
if present, the exact stdout. An invalid case may also hold `expected-stdout.txt` (`--format json`). When
`args` holds `-`, config.toml is given on standard input instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import ROOT
from support.cli import run_cli

CASES = ROOT / "tests" / "cases"


def _cases(kind: str) -> list[Path]:
    return sorted(p for p in (CASES / kind).iterdir() if p.is_dir())


def _run(case: Path):
    args = (case / "args").read_text().split() if (case / "args").exists() else []
    if "-" in args:
        return run_cli("check", *args, cwd=case, input=(case / "config.toml").read_bytes())
    return run_cli("check", *args, "config.toml", cwd=case)


@pytest.mark.parametrize("case", _cases("invalid"), ids=lambda p: p.name)
def test_invalid(case: Path) -> None:
    result = _run(case)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert result.stderr == (case / "expected.txt").read_text(encoding="utf-8")
    if (case / "expected-stdout.txt").exists():
        assert result.stdout == (case / "expected-stdout.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", _cases("valid"), ids=lambda p: p.name)
def test_valid(case: Path) -> None:
    result = _run(case)
    assert result.exit_code == 0, result.stderr
    expected = case / "expected.txt"
    if expected.exists():
        assert result.stdout == expected.read_text(encoding="utf-8")


def test_enough_invalid_cases() -> None:
    assert len(_cases("invalid")) >= 30
