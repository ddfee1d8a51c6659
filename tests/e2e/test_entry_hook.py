"""entry-hook.sh as a container entrypoint uses it: sourced under `set -euo pipefail`, or executed.

Whatever happens inside, the caller's boot goes on with its options, variables and functions unchanged.
"""

from __future__ import annotations

import subprocess

import pytest

from support import STAMP, unstamped
from support.net import http
from support.procs import run

from .conftest import Deployment, one

# The caller's shell state, minus what bash changes by itself (counters, clocks, the last argument, ...).
STATE = r"""
snapshot() {
  set -o
  shopt
  declare -F
  declare -p | grep -Ev '^declare -[-a-zA-Z]* (BASH_ARGC|BASH_ARGV|BASH_LINENO|BASH_SOURCE|BASH_COMMAND|BASH_SUBSHELL|BASHPID|EPOCHREALTIME|EPOCHSECONDS|FUNCNAME|LINENO|PIPESTATUS|RANDOM|SRANDOM|SECONDS|_|before|after)='
  trap -p
}
"""

CALLER = (
    STATE
    + r"""
set -euo pipefail
trap 'echo caller-trap' USR1
before=$(snapshot)
source "$1"
echo "still-here status=$?"
after=$(snapshot)
if [ "$before" = "$after" ]; then echo state-unchanged; else diff <(echo "$before") <(echo "$after") >&2; fi
"""
)


def source_hook(dep: Deployment, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    return run(
        ["bash", "-c", CALLER, "caller", str(dep.out / "entry-hook.sh")],
        env={**dep.env, **env},
        cwd=dep.root,
        timeout=timeout,
        what="a caller sourcing entry-hook.sh",
        detail=dep.all_logs,
    )


def assert_caller_went_on(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert "still-here status=0" in done.stdout
    assert "state-unchanged" in done.stdout, done.stderr


def hook_lines(done: subprocess.CompletedProcess) -> list[str]:
    """The entry hook's lines, each of which begins with the UTC time (without it)."""
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "sglang-entry-hook: " in line]
    assert all(STAMP.match(line) for line in lines), lines
    return [unstamped(line) for line in lines]


def test_gates_off(deploy):
    dep = one(deploy, "supervisord")
    done = source_hook(dep, {})
    assert_caller_went_on(done)
    assert hook_lines(done) == [
        "sglang-entry-hook: skipped install (AUTO_INFER_SGLANG_BUNDLE_ON_BOOT is off)",
        "sglang-entry-hook: skipped start (AUTO_INFER_SGLANG_ON_BOOT is off)",
    ]
    for value in ("0", "false", "no", "off", "", "maybe"):
        done = source_hook(dep, {"AUTO_INFER_SGLANG_BUNDLE_ON_BOOT": value, "AUTO_INFER_SGLANG_ON_BOOT": value})
        assert_caller_went_on(done)
        assert len(hook_lines(done)) == 2 and all("skipped" in line for line in hook_lines(done))
    executed = subprocess.run(
        ["bash", str(dep.out / "entry-hook.sh")], env=dep.env, capture_output=True, text=True, timeout=30, check=False
    )
    assert executed.returncode == 0 and len(hook_lines(executed)) == 2
    assert not dep.log_dir.exists() or not list(dep.log_dir.iterdir())  # nothing was started


def test_failures_are_reported_and_boot_goes_on(deploy, tmp_path):
    """No installer, no SGLang environment: ERROR lines, and the caller goes on."""
    dep = one(deploy, "fallback", project=tmp_path / "not-installed")
    (dep.out / "install-sglang-offline.sh").unlink(missing_ok=True)
    gates = {
        "AUTO_INFER_SGLANG_BUNDLE_ON_BOOT": "TRUE",
        "AUTO_INFER_SGLANG_ON_BOOT": "yes",
        "AUTO_INFER_SGLANG_WAIT_ON_BOOT": "On",
    }
    done = source_hook(dep, gates)
    assert_caller_went_on(done)
    errors = [line for line in hook_lines(done) if line.startswith("sglang-entry-hook: ERROR:")]
    assert len(errors) == 3, done.stdout + done.stderr  # no installer, start failed, not ready
    assert "install-sglang-offline.sh does not exist" in errors[0]
    assert "environment not installed" in dep.log("x")  # the launch script's own message (exit 10)
    executed = subprocess.run(
        ["bash", str(dep.out / "entry-hook.sh")],
        env={**dep.env, **gates},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert executed.returncode == 0 and "ERROR" in executed.stderr


def test_failing_installer_is_reported(deploy):
    dep = one(deploy, "supervisord")
    (dep.out / "install-sglang-offline.sh").write_text("#!/usr/bin/env bash\necho installing; exit 7\n")
    done = source_hook(dep, {"AUTO_INFER_SGLANG_BUNDLE_ON_BOOT": "1"})
    assert_caller_went_on(done)
    assert "installing" in done.stdout
    assert any("installer" in line and "exit status 7" in line for line in hook_lines(done) if "ERROR" in line)


def test_start_on_boot_twice(deploy):
    """Boot starts the instances (and waits when asked); a second boot with everything up is harmless."""
    dep = one(deploy, "supervisord")
    gates = {"AUTO_INFER_SGLANG_ON_BOOT": "1", "AUTO_INFER_SGLANG_WAIT_ON_BOOT": "true"}
    done = source_hook(dep, gates)
    assert_caller_went_on(done)
    assert "x: ready in " in done.stdout
    assert "sglang-entry-hook: all instances ready" in hook_lines(done)
    first = dep.record("x")
    again = source_hook(dep, {"AUTO_INFER_SGLANG_ON_BOOT": "on"})
    assert_caller_went_on(again)
    assert not [line for line in hook_lines(again) if "ERROR" in line]
    assert any("not waiting for readiness" in line for line in hook_lines(again))
    assert dep.record("x")["pid"] == first["pid"]
    assert http(dep.ports["x"], "/health")[0] == 200
    dep.run_ok("stop")


@pytest.mark.parametrize("mode", ["fallback"])
def test_master_disabled_starts_nothing(deploy, mode):
    dep = one(deploy, mode, master="enable = false")
    done = source_hook(dep, {"AUTO_INFER_SGLANG_ON_BOOT": "1"})
    assert_caller_went_on(done)
    assert any("master.enable is false" in line for line in hook_lines(done))
    assert not dep.record_path("x").exists()
    assert not (dep.run_dir / "pids").exists()
