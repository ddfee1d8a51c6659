"""launch-<name>.sh as the server sees it: an activated environment, persistent kernel caches keyed by
environment, GPU model and instance, the GPU-memory preflight, `--preflight` and `--help`.

The scripts run for real; `$PREFIX/bin/python` is a stand-in that writes its environment to a file and exits
99; nvidia-smi is the stand-in in tests/fakes/gpu."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from support import STAMP, unstamped

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GPU_PATH = f"{ROOT / 'tests' / 'fakes' / 'gpu'}:{SYSTEM_PATH}"
CACHE_VARS = (
    "SGLANG_CACHE_DIR",
    "SGLANG_JIT_CACHE_DIR",
    "SGLANG_DG_CACHE_DIR",
    "TRITON_CACHE_DIR",
    "TORCHINDUCTOR_CACHE_DIR",
    "CUDA_CACHE_PATH",
    "TILELANG_CACHE_DIR",
    "FLASHINFER_WORKSPACE_BASE",
)
GiB = 1024**3


class Box:
    def __init__(self, tmp: Path, run_dir: Path) -> None:
        self.tmp, self.run_dir = tmp, run_dir
        self.raw_stderr = ""  # of the last run, with the UTC time that begins each line
        self.project = tmp / "project"
        self.prefix = self.project / ".pixi" / "envs" / "default"
        (self.prefix / "bin").mkdir(parents=True)
        self.seen = tmp / "seen.json"
        python = self.prefix / "bin" / "python"
        python.write_text(
            f"#!/bin/sh\n{sys.executable} -c 'import json, os, sys; "
            f'json.dump(dict(os.environ), open(sys.argv[1], "w"))\' {self.seen}\n'
            "exit 99\n"
        )
        python.chmod(0o755)
        self.model = tmp / "model"
        self.model.mkdir()
        (self.model / "config.json").write_text("{}")

    def compile(self, instance: str = "", master: str = "") -> Path:
        config = self.tmp / "config.toml"
        config.write_text(
            f'version = 1\nsglang_version = "0.5.10.post1"\n[master]\npixi_project_dir = "{self.project}"\n'
            f'runtime_dir = "{self.run_dir}/run"\nlog_dir = "{self.tmp}/logs"\n{master}\n'
            f'[instances.x]\nmodel_path = "{self.model}"\ngpu_ids = [1, 2]\ntp_size = 2\nport = 2\n{instance}\n'
        )
        result = run_cli("compile", str(config), "-o", str(self.tmp / "out"))
        assert result.exit_code == 0, result.stderr
        return self.tmp / "out" / "launch-x.sh"

    def run(self, script: Path, *args: str, path: str = GPU_PATH, **env: str) -> subprocess.CompletedProcess:
        self.seen.unlink(missing_ok=True)
        done = subprocess.run(
            [str(script), *args],
            env={"PATH": path, "HOME": str(self.tmp), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.raw_stderr = done.stderr
        # a run's lines begin with the UTC time (test_every_line_of_a_run_is_stamped), left out here
        return subprocess.CompletedProcess(done.args, done.returncode, unstamped(done.stdout), unstamped(done.stderr))

    def server_env(self) -> dict[str, str]:
        return json.loads(self.seen.read_text())


@pytest.fixture
def box(tmp_path: Path):
    run_dir = Path(tempfile.mkdtemp(prefix="sge-", dir="/tmp"))
    yield Box(tmp_path, run_dir)
    subprocess.run(["rm", "-rf", str(run_dir)], check=False)


def test_server_runs_in_its_activated_environment(box: Box) -> None:
    activate = box.prefix / "etc" / "conda" / "activate.d"
    activate.mkdir(parents=True)
    # like a CUDA toolkit's activation script: it reads variables that may be unset (no set -u for it)
    (activate / "cuda.sh").write_text('export CUDA_HOME="$CONDA_PREFIX/targets/x86_64-linux$UNSET_BY_NOBODY"\n')
    done = box.run(box.compile())
    assert done.returncode == 99, done.stderr
    env = box.server_env()
    assert env["PATH"] == f"{box.prefix}/bin:{GPU_PATH}"
    assert env["CONDA_PREFIX"] == str(box.prefix)
    assert env["CUDA_HOME"] == f"{box.prefix}/targets/x86_64-linux"


def test_caches_persist_keyed_by_environment_gpu_model_and_instance(box: Box) -> None:
    script = box.compile()
    first = box.run(script, STANDIN_GPU_NAME="NVIDIA H100 80GB HBM3")
    assert first.returncode == 99, first.stderr
    env = box.server_env()
    root = box.project / ".cache" / "sglang" / "default" / "NVIDIA-H100-80GB-HBM3" / "x"
    assert env["SGLANG_CACHE_DIR"] == str(root) and env["FLASHINFER_WORKSPACE_BASE"] == str(root)
    assert env["SGLANG_JIT_CACHE_DIR"] == f"{root}/jit" and env["TRITON_CACHE_DIR"] == f"{root}/triton"
    for var in CACHE_VARS:
        assert Path(env[var]).is_dir(), var
        assert stat.S_IMODE(Path(env[var]).stat().st_mode) == 0o700, var
    (root / "triton" / "kernel.bin").write_bytes(b"compiled at the first boot")
    second = box.run(script, STANDIN_GPU_NAME="NVIDIA H100 80GB HBM3")  # the container restarted
    assert second.returncode == 99 and box.server_env()["TRITON_CACHE_DIR"] == f"{root}/triton"
    assert (root / "triton" / "kernel.bin").read_bytes() == b"compiled at the first boot"
    box.run(script, STANDIN_GPU_NAME="NVIDIA B200")  # another GPU model: another cache
    assert box.server_env()["SGLANG_CACHE_DIR"] == str(root.parent.parent / "NVIDIA-B200" / "x")
    box.run(script, path=SYSTEM_PATH)  # no nvidia-smi at all
    assert box.server_env()["SGLANG_CACHE_DIR"] == str(root.parent.parent / "no-gpu" / "x")


def test_a_cache_variable_set_by_the_config_or_the_container_wins(box: Box, tmp_path: Path) -> None:
    script = box.compile('env = { TRITON_CACHE_DIR = "/mine/triton" }', master=f'cache_dir = "{tmp_path}/c"')
    done = box.run(script, SGLANG_JIT_CACHE_DIR=str(tmp_path / "jit-of-the-container"))
    assert done.returncode == 99, done.stderr
    env = box.server_env()
    assert env["TRITON_CACHE_DIR"] == "/mine/triton"
    assert env["SGLANG_JIT_CACHE_DIR"] == str(tmp_path / "jit-of-the-container")
    assert env["SGLANG_CACHE_DIR"] == f"{tmp_path}/c/default/NVIDIA-H100-80GB-HBM3/x"
    dry = box.run(script, "--dry-run")
    assert "TRITON_CACHE_DIR=/mine/triton\n" in dry.stdout and f"SGLANG_CACHE_DIR={tmp_path}/c/" in dry.stdout


def _weights(box: Box, total: int) -> None:
    (box.model / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": {"a": "model-1.safetensors"}})
    )
    (box.model / "model-1.safetensors").write_bytes(b"x")


def test_weights_that_cannot_fit_the_gpus_stop_before_loading(box: Box) -> None:
    _weights(box, 3 * GiB)  # over tp 2: 1.5 GiB per GPU
    script = box.compile("mem_fraction_static = 0.75")
    done = box.run(script, STANDIN_GPU_MIB="2048")  # 2 GiB GPUs x 0.75 = 1.5 GiB: fits exactly
    assert done.returncode == 99, done.stderr
    done = box.run(script, STANDIN_GPU_MIB="2000")
    assert done.returncode == 19, done.stderr
    assert done.stderr.splitlines() == [
        "launch-x: error: the weights do not fit: 3072 MiB over 2 GPU(s) is 1536 MiB per GPU, but each has 2000 MiB "
        "x mem_fraction_static 0.75 = 1500 MiB; use more GPUs (tp_size), a quantized checkpoint, or a higher "
        "mem_fraction_static"
    ]
    assert not box.seen.exists(), "SGLang never started"
    assert all(STAMP.match(line) for line in box.raw_stderr.splitlines()), "each line of a run begins with the time"


def test_memory_preflight_sums_the_weight_files_without_an_index(box: Box) -> None:
    with open(box.model / "model.safetensors", "wb") as f:
        f.truncate(3 * 1024 * 1024)  # sparse: 3 MiB of weights, 1.5 MiB per GPU
    script = box.compile()  # mem_fraction_static unset: the most SGLang takes (0.9)
    assert box.run(script, STANDIN_GPU_MIB="2").returncode == 99
    done = box.run(script, STANDIN_GPU_MIB="1")
    assert done.returncode == 19 and "x mem_fraction_static 0.9 =" in done.stderr


def test_preflight_runs_every_check_and_starts_nothing(box: Box) -> None:
    _weights(box, 100 * GiB)
    (box.model / "model-1.safetensors").unlink()
    script = box.compile('api_key_env = "X_KEY"')
    done = box.run(script, "--preflight", STANDIN_GPU_MIB="1000")
    assert done.returncode == 12, done.stdout  # the first failure: a missing shard
    lines = done.stdout.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "ok",
        "ok",
        "FAIL (12)",
        "ok",
        "ok",
        "FAIL (19)",
        "FAIL (15)",
        "ok",
        "ok",
    ]
    assert all(line.startswith("launch-x: ") for line in lines)
    assert not box.seen.exists() and not (box.run_dir / "run").exists(), "nothing started, nothing made"
    good = box.run(script, "--preflight", path=SYSTEM_PATH, X_KEY="k")
    assert good.returncode == 12


def test_help_and_usage(box: Box) -> None:
    script = box.compile()
    done = box.run(script, "--help")
    assert done.returncode == 0 and "--preflight" in done.stdout and "19 the weights do not fit" in done.stdout
    wrong = box.run(script, "--nope")
    assert wrong.returncode == 2 and "usage:" in wrong.stderr


def test_dry_run_says_what_it_waits_for_and_which_variable_holds_the_key(box: Box) -> None:
    config = box.tmp / "config.toml"
    script = box.compile(
        'api_key_env = "X_KEY"\ndepends_on = ["y"]\n[instances.y]\nmodel_path = "/m"\n'
        'gpu_ids = [0]\nport = 3\nserver_args_env = { admin-api-key = "ADMIN" }'
    )
    assert config.exists()
    done = box.run(script, "--dry-run")
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "launch-x: waits first for y (http://127.0.0.1:3/health)",
        "launch-x: reads the API key from the variable X_KEY at launch",
    ]
    y = box.run(box.tmp / "out" / "launch-y.sh", "--dry-run")
    assert y.stderr.splitlines() == ["launch-y: reads --admin-api-key from the variable ADMIN at launch"]
