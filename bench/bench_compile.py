"""`sglangc compile` speed with the whole lint gate (bash -n, shellcheck, supervisor's parser) on every run."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GLM = ROOT / "model-configs" / "sglang-glm-4.7-tp8.toml"


def wall(command: list[str], runs: int) -> float:
    """Median wall time of a whole command, in seconds (a fresh output directory each time: everything written)."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run([*command, "-o", out], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    """The row of the table; `quick`: one run each (the benchmark works; its figures mean little)."""
    sglangc = shutil.which("sglangc") or sys.exit("sglangc is not installed in this environment")
    if not shutil.which("shellcheck"):
        sys.exit("shellcheck is not installed: the figure would not include the lint gate")
    runs = 1 if quick else 11
    check = statistics.median(_timed([sglangc, "check", "-q", str(GLM)]) for _ in range(runs))
    full = wall([sglangc, "compile", str(GLM)], runs)
    return [
        (
            "compile GLM-4.7 example with the full lint gate, median wall",
            "≤ 0.5 s",
            f"{full:.3f} s",
            f"{full / check:.1f}× check of the same config",
        ),
    ]


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
