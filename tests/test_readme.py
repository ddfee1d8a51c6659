"""A newcomer's check: every command README.md shows is run as written, or listed with the reason it cannot be."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from readme import (
    BUNDLE,
    NOT_HERE,
    OTHERS,
    RUN_BY,
    SHELLS,
    WRITING,
    FreshSetup,
    bash_blocks,
    code_blocks,
    commands,
    run_by,
    runners_of,
)
from support import FAKES_BIN, ROOT


def test_every_code_block_is_commands_or_a_file() -> None:
    """A block without a language, or of one not known here, might hold commands the next test would not see."""
    for language, text in code_blocks():
        assert language in SHELLS + OTHERS, f"README code block of language {language!r}:\n{text}"


def test_every_readme_command_is_run_or_listed() -> None:
    for line in commands():
        runners = runners_of(line)
        if line in NOT_HERE:
            assert not runners, f"README command both run by {runners} and listed as not runnable: {line}"
        else:
            assert len(runners) == 1, f"README command run by no test (or by several: {runners}): {line}"
    shown = set(commands())
    for line in NOT_HERE:
        assert line in shown, f"listed as not runnable, but README.md no longer shows it: {line}"
    for test in set(RUN_BY.values()):
        path, name = test.split("::")
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), f"no test {test}"
        assert run_by(test)


def test_ci_runs_the_readme_test_command() -> None:
    _setup, tests = bash_blocks()[:2]
    assert len(tests) == 1 and tests[0] in NOT_HERE
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests[0] in ci


def test_readme_setup_and_main_job_on_a_fresh_copy(fresh_setup: FreshSetup) -> None:
    """The first README command in a copy of the checkout (readme.setup_on_a_fresh_copy). Its set-up is the
    slowest of the suite, and must be: pip builds sglangc and installs it with every dependency from the index into
    an empty venv, as it does on a newcomer's machine (test_wheel.py shares that one run)."""
    done, out = fresh_setup, fresh_setup.out
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "glm47: gpus 0-7, 0.0.0.0:30000, wave 1" in done.stdout
    assert "python -m sglang.launch_server --model-path /llm-models/GLM-4.7" in done.stdout
    assert (out / "launch-glm47.sh").exists() and (out / "manifest.json").exists()


def test_readme_bundle_commands(tmp_path: Path) -> None:
    """`sglangc bundle` as the README shows it: the pixi-pack kind through the pixi and pixi-pack stand-ins."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    env = {
        **os.environ,
        "PATH": f"{FAKES_BIN}{os.pathsep}{os.environ['PATH']}",
        "PIXI_STANDIN_WHEELS": str(wheels),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    for n, line in enumerate(run_by(BUNDLE)):
        out = tmp_path / f"workspace-{n}" / "sglang-offline-bundle.tar"
        out.parent.mkdir()
        assert "/data/workspace/sglang-offline-bundle.tar" in line
        done = subprocess.run(
            ["bash", "-c", line.replace("/data/workspace/sglang-offline-bundle.tar", str(out))],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        check = subprocess.run(
            ["sha256sum", "-c", f"{out.name}.sha256"], cwd=out.parent, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        listing = subprocess.run(["tar", "-tf", str(out)], capture_output=True, text=True, check=True).stdout.split()
        assert "pixi-pack.json" in listing and "environment.yml" in listing


def test_readme_writing_a_config(tmp_path: Path) -> None:
    """The "Writing a config" commands, in order, in an empty directory: init writes a config that checks and plans."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    lines = run_by(WRITING)
    assert lines[0].startswith("sglangc init ")
    for line in lines:
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
    assert (tmp_path / "sglang-config.schema.json").exists()
    assert 'model_path = "/llm-models/GLM-4.7"' in (tmp_path / "my-config.toml").read_text()
    assert "--model-path /llm-models/GLM-4.7" in done.stdout and "--tp-size 8" in done.stdout  # the plan
