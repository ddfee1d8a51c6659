#!/usr/bin/env python3
"""Runtime benchmarks of the compiled bash artifacts, against the SGLang stand-in.

    python bench/bench_runtime.py [--runs 50] [--load 3]

(a) entry-hook.sh with both gates off: median of N runs, executed (`bash entry-hook.sh`) and sourced (the time
    `source` takes inside an already running bash, and the whole `bash -c 'source …'`).          target ≤ 20 ms
(b) four independent instances that each take --load s to become ready: wall time of `start` then `wait`,
    with supervisord and without (plain background processes).                                   target ≤ 4.5 s
(c) two instances sharing a GPU (mem_fraction_static 0.4 each): the second starts only once the first is ready.

Needs the dev environment (sglangc, supervisor for nothing but the stand-in's prefix); builds two throwaway
stand-in prefixes (cached wheels) in a temporary directory and kills everything it started.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the shared test support: stand-in, free ports, /proc

from support import SYSTEM_PATH  # noqa: E402
from support.net import free_ports  # noqa: E402
from support.procs import kill_all, processes_with  # noqa: E402
from support.standin import make_project  # noqa: E402


def compile_config(work: Path, project: Path, instances: str) -> Path:
    model = work / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    run_dir = Path(tempfile.mkdtemp(prefix="sgb-", dir="/tmp"))
    config = work / "config.toml"
    config.write_text(
        "\n".join(
            [
                "version = 1",
                'sglang_version = "0.5.10.post1"',  # what the default environment (the stand-in's) installs
                "[master]",
                f"pixi_project_dir = {json.dumps(str(project))}",
                f"log_dir = {json.dumps(str(work / 'logs'))}",
                f"runtime_dir = {json.dumps(str(run_dir / 'run'))}",
                "start_seconds = 1",
                "stop_timeout = 10",
                instances.replace("<<model>>", str(model)).replace("<<work>>", str(work)),
            ]
        )
    )
    out = work / "out"
    subprocess.run(
        [sys.executable, "-m", "sglangc", "compile", str(config), "-o", str(out)], check=True, capture_output=True
    )
    return out


class Runner:
    def __init__(self, out: Path, env: dict[str, str]):
        self.out, self.env = out, env

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(self.out / "check-and-run-sglang.sh"), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cleanup(self, work: Path) -> None:
        try:
            self("stop", timeout=60)
        except subprocess.TimeoutExpired:
            pass
        kill_all(processes_with(str(work), str(self.out)))


Row = tuple[str, str, str, str]


def bench_entry_hook(work: Path, project: Path, runs: int) -> list[Row]:
    out = compile_config(work, project, '[instances.x]\nmodel_path = "<<model>>"\ngpu_ids = [0]\n')
    hook = str(out / "entry-hook.sh")
    env = {"PATH": SYSTEM_PATH, "HOME": str(work)}

    def wall(argv: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
        return (time.perf_counter() - t0) * 1000

    executed = statistics.median(wall(["bash", hook]) for _ in range(runs))
    sourced_whole = statistics.median(wall(["bash", "-c", f"source {hook}"]) for _ in range(runs))
    empty_bash = statistics.median(wall(["bash", "-c", ":"]) for _ in range(runs))
    inside = subprocess.run(
        [
            "bash",
            "-c",
            'for i in $(seq "$2"); do t0=$EPOCHREALTIME; source "$1" >/dev/null; t1=$EPOCHREALTIME; '
            "echo $(( ${t1/./} - ${t0/./} )); done",
            "bench",
            hook,
            str(runs),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    sourced = statistics.median(int(us) for us in inside) / 1000
    return [
        (
            "entry-hook.sh, gates off, executed (median)",
            "≤ 20 ms",
            f"{executed:.2f} ms",
            f"{executed / empty_bash:.2f}× `bash -c :`",
        ),
        ("entry-hook.sh, gates off, sourced by a new bash (median)", "≤ 20 ms", f"{sourced_whole:.2f} ms", ""),
        ("entry-hook.sh, gates off, sourced in a running shell (median)", "≤ 20 ms", f"{sourced:.3f} ms", ""),
    ]


FOUR = "".join(
    f"""
[instances.s{i}]
model_path = "<<model>>"
served_model_name = "s{i}"
port = {{port{i}}}
gpu_ids = [{i}]
env = {{{{ SGLANG_STANDIN_LOAD_SECONDS = "{{load}}" }}}}
"""
    for i in range(4)
)


def bench_four(work: Path, project: Path, mode: str, load: float) -> Row:
    ports = free_ports(4)
    out = compile_config(work, project, FOUR.format(load=load, **{f"port{i}": p for i, p in enumerate(ports)}))
    runner = Runner(out, {"PATH": SYSTEM_PATH, "HOME": str(work)})
    try:
        t0 = time.perf_counter()
        started = runner("start")
        t_start = time.perf_counter() - t0
        waited = runner("wait", "--timeout", "60")
        total = time.perf_counter() - t0
        if started.returncode or waited.returncode:
            raise RuntimeError("\n".join([started.stdout, started.stderr, waited.stdout, waited.stderr]))
        return (
            f"4 instances ready after {load:g} s each: start + wait, {mode}",
            "≤ 4.5 s",
            f"{total:.2f} s",
            f"{total / load:.2f}× one load (start alone {t_start:.2f} s)",
        )
    finally:
        runner.cleanup(work)


SHARED = """
[instances.first]
model_path = "<<model>>"
port = {port0}
gpu_ids = [0]
mem_fraction_static = 0.4
env = {{ SGLANG_STANDIN_LOAD_SECONDS = "{load}", SGLANG_STANDIN_RECORD = "<<work>>/first.json" }}

[instances.second]
model_path = "<<model>>"
port = {port1}
gpu_ids = [0]
mem_fraction_static = 0.4
env = {{ SGLANG_STANDIN_LOAD_SECONDS = "{load}", SGLANG_STANDIN_RECORD = "<<work>>/second.json" }}
"""


def bench_shared_gpu(work: Path, project: Path, load: float) -> Row:
    ports = free_ports(2)
    out = compile_config(work, project, SHARED.format(load=load, port0=ports[0], port1=ports[1]))
    runner = Runner(out, {"PATH": SYSTEM_PATH, "HOME": str(work)})
    try:
        t0 = time.time()
        runner("start")
        waited = runner("wait", "--timeout", "60")
        first_spawn = (work / "first.json").stat().st_mtime - t0
        first_ready = first_spawn + load
        second_spawn = (work / "second.json").stat().st_mtime - t0
        if waited.returncode:
            raise RuntimeError(waited.stdout + waited.stderr)
        order = "after the first was ready" if second_spawn >= first_ready else "TOO EARLY"
        return (
            "2 instances sharing GPU 0: second server starts",
            "after the first is ready",
            f"{second_spawn:.2f} s (first ready ≈ {first_ready:.2f} s)",
            order,
        )
    finally:
        runner.cleanup(work)


def run(runs: int = 50, load: float = 3.0, quick: bool = False) -> list[Row]:
    """The rows of the table; `quick`: 3 runs and 0.5 s loads (the benchmark works; its figures mean little)."""
    if quick:
        runs, load = 3, 0.5
    if shutil.which("supervisord", path=SYSTEM_PATH):
        sys.exit(f"a supervisord on {SYSTEM_PATH}: the fallback mode cannot be measured here")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sglangc-bench-") as tmp:
        base = Path(tmp)
        projects = {
            mode: make_project(base / f"project-{mode}", supervisor=mode == "supervisord")
            for mode in ("supervisord", "fallback")
        }
        work = base / "hook"
        work.mkdir()
        rows += bench_entry_hook(work, projects["supervisord"], runs)
        for mode in ("supervisord", "fallback"):
            work = base / f"four-{mode}"
            work.mkdir()
            rows.append(bench_four(work, projects[mode], mode, load))
        work = base / "shared"
        work.mkdir()
        rows.append(bench_shared_gpu(work, projects["supervisord"], min(load, 2.0)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--load", type=float, default=3.0, help="stand-in load time of each instance (s)")
    args = parser.parse_args()
    for row in run(args.runs, args.load):
        print(" | ".join(row))


if __name__ == "__main__":
    main()
