"""`sglangc check` speed: the GLM-4.7 example, a generated 512-instance config, and growth from 64 to 512."""

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


def generated(count: int) -> str:
    """A deployment of `count` one-GPU instances; every fourth depends on the one before it."""
    lines = [
        "version = 1",
        'sglang_version = "0.5.23"',
        "[master]",
        'pixi_environment = "latest"',
        f"gpu_count = {count}",
        "",
    ]
    for i in range(count):
        lines += [
            f"[instances.i{i:04d}]",
            f'model_path = "/llm-models/m{i}"',
            'gpu_ids = "auto"',
            "mem_fraction_static = 0.8",
            "server_args = { context-length = 8192, enable-metrics = true }",
        ]
        if i % 4:
            lines.append(f'depends_on = ["i{i - 1:04d}"]')
        lines.append("")
    return "\n".join(lines)


def wall(command: list[str], runs: int) -> float:
    """Median wall time of a whole command, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process(path: Path, runs: int) -> float:
    """Median time of the check itself (imports already paid), in seconds."""
    from sglangc.pipeline import check

    check(path)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = check(path)
        times.append(time.perf_counter() - start)
        assert result.plan is not None, result.findings[:3]
    return statistics.median(times)


def run(quick: bool = False) -> list[tuple[str, str, str, str]]:
    """The rows of the table; `quick`: one or two runs each (the benchmark works; its figures mean little)."""
    sglangc = shutil.which("sglangc") or sys.exit("sglangc is not installed in this environment")
    n = (lambda runs: 1) if quick else (lambda runs: runs)
    python = wall([sys.executable, "-c", "pass"], n(15))
    glm = wall([sglangc, "check", "-q", str(GLM)], n(21))
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for count in (64, 512):
            paths[count] = Path(tmp, f"gen-{count}.toml")
            paths[count].write_text(generated(count))
        big = wall([sglangc, "check", "-q", str(paths[512])], n(9))
        t64, t512 = in_process(paths[64], n(9)), in_process(paths[512], n(5))
    per_instance = (t512 / 512) / (t64 / 64)
    return [
        ("check GLM-4.7 example, median wall", "≤ 0.1 s", f"{glm:.3f} s", f"{glm / python:.1f}× bare python start"),
        ("check 512 generated instances, median wall", "≤ 0.3 s", f"{big:.3f} s", f"{big / glm:.2f}× GLM example"),
        ("check work, 64 instances (in process)", "linear", f"{t64 * 1000:.1f} ms", ""),
        (
            "check work, 512 instances (in process)",
            "linear",
            f"{t512 * 1000:.1f} ms",
            f"per-instance cost 512 vs 64: {per_instance:.2f} (1.00 = linear)",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
