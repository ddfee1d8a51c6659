"""The benchmark entry point runs (its figures are read from docs/benchmarks.md, never asserted as times)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_bench_entry_point_prints_one_table() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--only", "bench_check"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "| figure | target | measured | ratio / note |"
    assert any(line.startswith("| check GLM-4.7 example, median wall | ≤ 0.15 s |") for line in lines)
    assert (ROOT / "docs" / "benchmarks.md").read_text().count("| ≤ ") >= 8
