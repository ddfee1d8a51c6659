#!/usr/bin/env python3
"""The test suite's wall time and its slowest tests; `--write` puts them into docs/benchmarks.md ("## Test suite").

    python bench/suite.py [--write] [--slowest 10]

Runs README's test command (`python -m pytest`, parallel through the addopts of pyproject.toml) from the checkout,
with this process's environment: give it what .ci/run gives the suite (SGLANGC_SGLANG_PYTHON_<V>, SGLANGC_TAPLO,
CI=true) to time all of it. bench/run.py --write keeps the section this writes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DURATION = re.compile(r"^(\d+\.\d+)s (setup|call|teardown) +(\S.*)$")
SUMMARY = re.compile(r"^=+ (.*\d+ passed.*) in [\d.]+s")


def measure(slowest: int, failures_ok: bool) -> tuple[float, str, list[tuple[float, str, str]], str]:
    """(wall seconds, pytest's summary, the slowest phases, the load averages around it) of one run of the suite;
    exits if the suite fails, unless `failures_ok`."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", f"--durations={slowest}", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode and not failures_ok:
        sys.exit(f"the suite failed (exit {done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    lines = done.stdout.splitlines()
    summary = next((m.group(1) for line in lines if (m := SUMMARY.match(line))), "?")
    phases = [(float(m.group(1)), m.group(2), m.group(3)) for line in lines if (m := DURATION.match(line))]
    return wall, summary, phases[:slowest], f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after"


def section(wall: float, summary: str, phases: list[tuple[float, str, str]], load: str) -> str:
    ci = (
        "with CI=true and the real SGLang parsers and Taplo, as .ci/run runs it"
        if os.environ.get("CI") == "true"
        else "without CI=true (tests of tools this machine lacks are skipped)"
    )
    rows = "\n".join(f"| `{test}` | {phase} | {seconds:.1f} s |" for seconds, phase, test in phases)
    return (
        "## Test suite\n"
        "README's test command, `python -m pytest` (pytest-xdist `-n auto`: one worker per core and one more),\n"
        f"{ci}:\n"
        f"**{wall:.0f} s wall** on {os.cpu_count()} cores ({load}); {summary}.\n"
        "Produced by `python bench/suite.py --write`.\n\n"
        f"The slowest tests (`--durations={len(phases)}`; a test over 30 s says in a comment why it must take that long):\n\n"
        "| test | phase | time |\n|---|---|---|\n"
        f"{rows}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the section into docs/benchmarks.md")
    parser.add_argument("--slowest", type=int, default=10, help="how many of the slowest tests to list")
    parser.add_argument("--failures-ok", action="store_true", help="measure even a run with failures (said)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import run as bench_run

    text = section(*measure(args.slowest, args.failures_ok))
    print(text, end="")
    if args.write:
        doc = bench_run.DOC.read_text(encoding="utf-8")
        old = bench_run.suite_section(doc)
        doc = doc.replace(old, "\n" + text) if old else doc.rstrip("\n") + "\n\n" + text
        bench_run.DOC.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    main()
