"""Every benchmark runs, through the entry point, in its quick form (figures are read from docs/benchmarks.md, never
asserted as times)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support import ROOT

MODULES = sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))
ROW = {
    "bench_check": "| check GLM-4.7 example, median wall | ≤ ",
    "bench_compile": "| compile GLM-4.7 example",
    "bench_hostile": "| check of ",
    "bench_runtime": "| entry-hook.sh, gates off, executed (median) | ≤ 20 ms |",
    "bench_install": "| install: unchanged re-run, ",
    "bench_gateway": "| gateway: latency added at the median (",
}


def test_every_benchmark_is_run_by_the_entry_point() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import run
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert sorted(run.MODULES) == MODULES == sorted(ROW)


@pytest.mark.parametrize("module", MODULES)
def test_benchmark_prints_its_rows(module: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", module],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["| figure | target | measured | ratio / note |", "|---|---|---|---|"]
    assert any(line.startswith(ROW[module]) for line in lines), done.stdout
    assert all(line.startswith("| ") and line.endswith(" |") and line.count(" | ") == 3 for line in lines[2:])


def test_benchmarks_page_has_the_table_and_the_suite() -> None:
    doc = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert doc.count("| ≤ ") >= 8
    assert "\n## Test suite\n" in doc
