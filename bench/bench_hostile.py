"""`sglangc check` of hostile configs under the 1 MiB limit: the slowest shape and the most memory any took."""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # as the tests import it: tests/ on sys.path

from security.hostile_configs import SHAPES  # noqa: E402


def measure(sglangc: str, config: Path) -> tuple[float, int]:
    """Wall seconds and peak resident memory (bytes) of one check in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([sglangc, "check", "-q", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far, in KiB
    return seconds, max(peak, before) * 1024


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    """The rows of the table (each shape is checked once: `quick` changes nothing)."""
    sglangc = shutil.which("sglangc") or sys.exit("sglangc is not installed in this environment")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (text, _words) in SHAPES.items():
            config = Path(tmp, "config.toml")
            config.write_text(text, encoding="utf-8")
            results[name] = measure(sglangc, config)
    slowest = max(results, key=lambda n: results[n][0])
    hungriest = max(r[1] for r in results.values())
    return [
        (
            f"check of {len(SHAPES)} hostile configs (≤ 1 MiB), the slowest",
            "≤ 2 s",
            f"{results[slowest][0]:.2f} s",
            slowest,
        ),
        (
            f"check of {len(SHAPES)} hostile configs (≤ 1 MiB), peak memory of any",
            "≤ 500 MB",
            f"{hungriest / 1e6:.0f} MB",
            "resident set size",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
