"""launch-<name>.sh preflight: each problem is one line on stderr and its own exit code, before SGLang starts.

The scripts run for real; `$PREFIX/bin/python` is a stub that exits 99, so reaching SGLang would show.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import types
from pathlib import Path

import pytest

from support import SYSTEM_PATH, procs, unstamped, wait_for
from support.cli import run_cli
from support.procs import cmdline, group_members, kill_all

KEY = "sk-preflight-secret-77"


@pytest.fixture
def box(tmp_path: Path):
    short = Path(tempfile.mkdtemp(prefix="sgp-", dir="/tmp"))  # runtime_dir is kept short (socket path limit)
    project = tmp_path / "project"
    python = project / ".pixi/envs/default/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nexit 99\n")
    python.chmod(0o755)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")

    def compile_(instance: str = "", master: str = "", model_path: Path = model, runtime: str = "") -> Path:
        config = tmp_path / "config.toml"
        config.write_text(
            f'version = 1\nsglang_version = "0.5.10.post1"\n[master]\npixi_project_dir = "{project}"\n'
            f'runtime_dir = "{runtime or short / "run"}"\nlog_dir = "{tmp_path}/logs"\n{master}\n'
            f'[instances.dep]\nmodel_path = "{model}"\ngpu_ids = [0]\nport = 1\n'
            f'[instances.x]\nmodel_path = "{model_path}"\ngpu_ids = [1, 2]\ntp_size = 2\nport = 2\n{instance}\n'
        )
        result = run_cli("compile", str(config), "-o", str(tmp_path / "out"))
        assert result.exit_code == 0, result.stderr
        return tmp_path / "out" / "launch-x.sh"

    def run(
        script: Path, env: dict[str, str] | None = None, path: str = SYSTEM_PATH, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        done = procs.run(
            [script], env={"PATH": path, "HOME": str(tmp_path), **(env or {})}, timeout=timeout, what=script.name
        )
        # a run's lines begin with the UTC time (tests/unit/test_launch_env.py checks it), left out here
        return subprocess.CompletedProcess(done.args, done.returncode, unstamped(done.stdout), unstamped(done.stderr))

    yield types.SimpleNamespace(compile=compile_, run=run, tmp=tmp_path, model=model, project=project, run_dir=short)
    shutil.rmtree(short, ignore_errors=True)


def _fails(done: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("launch-x: error: "), lines
    for word in words:
        assert word in lines[-1], lines[-1]
    assert KEY not in done.stdout + done.stderr


def test_environment_not_installed(box) -> None:
    script = box.compile()
    _fails(
        box.run(script, {"AUTO_INFER_SGLANG_PIXI_PROJECT_DIR": str(box.tmp / "empty")}),
        10,
        "not installed",
        "install-sglang-offline.sh",
    )


def test_model_missing_or_without_config(box) -> None:
    _fails(box.run(box.compile(model_path=box.tmp / "nope")), 11, "does not exist")
    (box.model / "config.json").unlink()
    _fails(box.run(box.compile()), 11, "no config.json")


def test_weight_shards_named_in_the_index_must_exist(box) -> None:
    index = {
        "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}
    }
    (box.model / "model.safetensors.index.json").write_text(json.dumps(index))
    (box.model / "model-00001-of-00002.safetensors").write_bytes(b"x")
    _fails(box.run(box.compile()), 12, "1 weight shard", "model-00002-of-00002.safetensors")
    (box.model / "model-00002-of-00002.safetensors").write_bytes(b"x")
    assert box.run(box.compile()).returncode == 99  # all there: on to SGLang (the stub)


def test_gpu_beyond_what_nvidia_smi_lists(box) -> None:
    tools = box.tmp / "tools"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-1)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-2)'\n")
    smi.chmod(0o755)
    _fails(box.run(box.compile(), path=f"{tools}:{SYSTEM_PATH}"), 14, "GPU 2", "2 GPU(s)")
    smi.write_text("#!/bin/sh\nexit 9\n")  # a broken nvidia-smi: a warning, not a refusal
    done = box.run(box.compile(), path=f"{tools}:{SYSTEM_PATH}")
    assert done.returncode == 99 and "GPU ids not checked" in done.stderr


def test_api_key_unset_or_unusable(box) -> None:
    script = box.compile('api_key_env = "X_KEY"')
    _fails(box.run(script), 15, "X_KEY is not set")
    _fails(box.run(script, {"X_KEY": ""}), 15, "X_KEY is not set")
    _fails(box.run(script, {"X_KEY": "-" + KEY}), 16, "starts with '-'")
    _fails(box.run(script, {"X_KEY": KEY + "\nmore"}), 16, "control character")
    done = box.run(script, {"X_KEY": KEY + "'s"})
    assert done.returncode == 99 and KEY not in done.stdout + done.stderr
    secret = box.run_dir / "run" / "secrets" / "x.yaml"
    assert secret.read_text() == f"api-key: '{KEY}''s'\n"
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.parent.stat().st_mode & 0o777 == 0o700


def test_runtime_dir_unusable(box) -> None:
    (box.run_dir / "blocker").write_text("a file, not a directory\n")
    script = box.compile('api_key_env = "X_KEY"', runtime=f"{box.run_dir}/blocker/run")
    _fails(box.run(script, {"X_KEY": KEY}), 18, "unsafe runtime directory: cannot create")


def test_dependency_not_ready_in_time(box) -> None:
    script = box.compile('depends_on = ["dep"]', master="ready_timeout = 2")
    done = box.run(script, timeout=15)  # gives up after ready_timeout, not the 60 s a test allows by default
    _fails(done, 17, "dep was not ready within 2s")
    assert "waiting for dep" in done.stdout


def test_term_while_waiting_ends_at_once_and_leaves_nothing(box) -> None:
    script = box.compile('depends_on = ["dep"]')
    out = box.tmp / "stdout"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [str(script)],
            env={"PATH": SYSTEM_PATH, "HOME": str(box.tmp)},
            start_new_session=True,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
    try:
        # into its wait for `dep`, which never comes up
        wait_for(lambda: "waiting for dep" in out.read_text(), 30, "the launch script to wait for dep")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 143
        wait_for(
            lambda: not group_members(proc.pid),
            5,
            "its process group to be empty",
            detail=lambda: f"left: {[b' '.join(cmdline(p)) for p in group_members(proc.pid)]}",
        )
    finally:
        kill_all(group_members(proc.pid))
        proc.wait(timeout=5)
