"""A newcomer's check: the README's commands work as written (each one is run by some test)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from readme import ROOT, bash_blocks, commands, section

# Commands that need what this machine has not got; what they rely on is tested elsewhere.
NOT_HERE = {
    "docker exec -it infer-dev bash": "no Docker engine; the pieces of examples/infer-dev are tested one by one",
}


def test_every_readme_command_is_run_by_a_test() -> None:
    runners = {
        "Two commands": "test_readme.py (set-up + main job) and .ci/run (the test command)",
        "Workflow 2": "tests/boot/test_boot.py::test_readme_manual_workflow",
        "Building the bundle": "test_readme.py::test_readme_bundle_commands",
        "Talking to the servers": "tests/boot/test_boot.py::test_readme_manual_workflow",
    }
    covered = {line for title in runners for line in section(title)}
    for line in commands():
        assert line in covered or line in NOT_HERE, f"README command not exercised by a test: {line}"


def test_ci_runs_the_readme_test_command() -> None:
    setup, tests = bash_blocks()[:2]
    assert len(tests) == 1
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests[0] in ci


def test_readme_setup_and_main_job_on_a_fresh_copy(tmp_path: Path) -> None:
    (line,) = bash_blocks()[0]
    copy = tmp_path / "sglangc"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    out = tmp_path / "artifacts"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    done = subprocess.run(["bash", "-c", line.replace("/tmp/sglang-artifacts", str(out))], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "glm47: gpus 0-7, 0.0.0.0:30000, wave 1" in done.stdout
    assert "python -m sglang.launch_server --model-path /llm-models/GLM-4.7" in done.stdout
    assert (out / "launch-glm47.sh").exists() and (out / "manifest.json").exists()


def test_readme_bundle_commands(tmp_path: Path) -> None:
    """`sglangc bundle` as the README shows it: the pixi-pack kind through the pixi and pixi-pack stand-ins."""
    lines = section("Building the bundle")
    assert len(lines) == 2
    fakes = ROOT / "tests" / "fakes" / "bin"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    env = {**os.environ, "PATH": f"{fakes}{os.pathsep}{os.environ['PATH']}", "PIXI_STANDIN_WHEELS": str(wheels),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = tmp_path / "workspace" / "sglang-offline-bundle.tar"
    out.parent.mkdir()
    pixi_line = lines[0].replace("/data/workspace/sglang-offline-bundle.tar", str(out))
    done = subprocess.run(["bash", "-c", pixi_line], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    check = subprocess.run(["sha256sum", "-c", f"{out.name}.sha256"], cwd=out.parent, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    listing = subprocess.run(["tar", "-tf", str(out)], capture_output=True, text=True, check=True).stdout.split()
    assert "pixi-pack.json" in listing and "environment.yml" in listing
    assert "--kind wheelhouse" in lines[1]  # its download of the real GPU wheels is tested with local wheels in tests/bundle
