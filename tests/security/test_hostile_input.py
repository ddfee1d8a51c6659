"""`sglangc check` of a hostile config ends, within a memory bound, with a finding that says why: never a
traceback, never minutes of work (how fast it ends is measured in bench/bench_hostile.py)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from .hostile_configs import SHAPES

MEMORY_BOUND = 500 * 1024 * 1024
LIMIT = 1024 * 1024


def _bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BOUND, MEMORY_BOUND))


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_hostile_config_ends_with_its_finding(shape: str, tmp_path: Path) -> None:
    text, words = SHAPES[shape]
    assert len(text.encode()) <= LIMIT, "a shape within the size limit"
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    # The timeout only keeps a regression from hanging the suite; the figure that matters is in bench/.
    done = subprocess.run(
        [sys.executable, "-m", "sglangc", "check", "-q", str(config)],
        preexec_fn=_bounded,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    lines = done.stderr.splitlines()
    assert 1 <= len(lines) <= 101 and all(line.startswith(str(config)) for line in lines), lines[:3]
    assert words in done.stderr, lines[:3]
    assert all(len(line) < 2000 for line in lines), "no finding prints a whole hostile value"


def test_a_fifo_as_config_is_refused_at_once(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "cfg.fifo"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "sglangc", "check", str(fifo)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr == f"{fifo}: is not a regular file (a FIFO, socket or device); a config is read from a file\n"
