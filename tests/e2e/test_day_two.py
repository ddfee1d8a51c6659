"""What a person needs on the second day: instances started by name only (autostart = false), and log tails of
the current run only."""

from __future__ import annotations

import pytest

from .conftest import MODES

TWO = """
[instances.a]
model_path = "<<model>>"
port = <<port_a>>
gpu_ids = [0]
env = { SGLANG_STANDIN_RECORD = "<<record_a>>" }

[instances.b]
model_path = "<<model>>"
port = <<port_b>>
gpu_ids = [1]
autostart = false
env = { SGLANG_STANDIN_RECORD = "<<record_b>>" }
"""
PAIR = TWO.replace("autostart = false\n", "")  # both start with `start`


@pytest.mark.parametrize("mode", MODES)
def test_an_instance_without_autostart_starts_only_by_name(deploy, mode):
    dep = deploy(TWO, ["a", "b"], mode=mode)
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")  # waits for the autostart instances only
    assert dep.record_path("a").exists() and not dep.record_path("b").exists()
    status = dep.runner("status")
    states = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()}
    assert states["a"] == "RUNNING" and states["b"] in ("STOPPED", "EXITED"), status.stdout
    dep.run_ok("start", "b")
    dep.run_ok("wait", "--timeout", "30", "b")
    assert dep.record_path("b").exists()
    dep.run_ok("stop")
    if mode == "supervisord":
        conf = (dep.out / "supervisord.conf").read_text()
        assert "[program:sglang-b]\ncommand=" in conf
        section = conf.split("[program:sglang-b]")[1].split("\n\n")[0]
        assert "autostart=false" in section


CRASHING = """
[instances.x]
model_path = "<<model>>"
port = <<port_x>>
gpu_ids = [0]
env = { SGLANG_STANDIN_RECORD = "<<record_x>>", SGLANG_STANDIN_CRASH_AT_START = "1" }
"""


def test_tails_show_the_current_run_only(deploy):
    dep = deploy(CRASHING, ["x"], mode="fallback")
    for _ in range(3):
        dep.runner("start")
    log = dep.log("x")
    assert log.count("launch-x: === run begins ") == 3 and log.count("Crash on demand at start") == 3
    waited = dep.runner("wait", "--timeout", "10")
    assert waited.returncode == 1
    assert waited.stdout.count("Crash on demand at start") == 1, waited.stdout
    assert "(this run)" in waited.stdout


def test_every_command_follows_the_mode_start_chose(deploy):
    """start under supervisord (chosen through AUTO_INFER_SGLANG_SUPERVISORD); a shell without that variable
    still restarts, reports and stops through the same supervisord, and never starts a second copy."""
    import shutil
    import sys
    from pathlib import Path

    from support.procs import proc_state

    dep = deploy(PAIR, ["a", "b"], mode="fallback")  # no supervisord anywhere
    chosen = shutil.which("supervisord", path=str(Path(sys.executable).parent))
    assert chosen
    with_env = {**dep.env, "AUTO_INFER_SGLANG_SUPERVISORD": chosen}
    assert dep.runner("start", env=with_env).returncode == 0
    dep.run_ok("wait", "--timeout", "30")
    assert f"mode=supervisord\nsupervisord={chosen}\n" in (dep.run_dir / "state").read_text()
    first = dep.record("b")["pid"]
    restarted = dep.run_ok("restart", "b")  # without the variable
    assert "started (pid" not in restarted.stdout, "not a background copy"
    dep.run_ok("wait", "--timeout", "30")
    second = dep.record("b")["pid"]
    assert second != first and proc_state(first) is None and proc_state(second)
    servers = [p for p in [dep.record(n)["pid"] for n in "ab"] if proc_state(p)]
    assert len(servers) == 2
    plain, supervised = dep.runner("status"), dep.runner("status", env=with_env)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert [line.split()[:5] for line in plain.stdout.splitlines()] == [
        line.split()[:5] for line in supervised.stdout.splitlines()
    ]  # name, state, ready, url, pid
    dep.run_ok("stop")
    assert not (dep.run_dir / "state").exists(), "stop of everything ends the record"
    assert all(proc_state(p) is None for p in servers)


def test_a_record_whose_supervisord_was_killed_is_said(deploy):
    import os
    import signal

    from support import wait_for
    from support.procs import proc_state

    dep = deploy(PAIR, ["a", "b"], mode="supervisord")
    dep.run_ok("start")
    pid = dep.supervisord_pid()
    assert pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: proc_state(pid) is None, 10, "supervisord to die")
    status = dep.runner("status")
    assert f"supervisord (pid {pid}, recorded at start) is not running" in status.stderr
    assert dep.runner("start").returncode == 0
    assert dep.runner("status").stderr == ""
    dep.run_ok("stop")


@pytest.mark.parametrize("mode", MODES)
def test_status_of_names_as_json_with_what_a_failure_means(deploy, mode, tmp_path):
    import json

    dep = deploy(PAIR, ["a", "b"], mode=mode)
    model = tmp_path / "model"
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "model-1.safetensors"}}))
    dep.runner("start")  # both fail: a weight shard is missing
    status = dep.runner("status", "a")
    assert status.returncode == 3 and len(status.stdout.splitlines()) == 1, status.stdout
    assert "12 = weight shards missing" in status.stdout, status.stdout
    log = dep.log("a")
    assert log.count("names 1 weight shard(s) missing") == 1, "reported once, not once per retry"
    doc = json.loads(dep.runner("status", "--format", "json").stdout)
    assert doc["mode"] == ("supervisord" if mode == "supervisord" else "background")
    assert [i["name"] for i in doc["instances"]] == ["a", "b"]
    assert {i["last_exit"] for i in doc["instances"]} == {12} and not any(i["ready"] for i in doc["instances"])
    (model / "model-1.safetensors").write_bytes(b"w")
    dep.run_ok("restart")
    dep.run_ok("wait", "--timeout", "30")
    doc = json.loads(dep.run_ok("status", "--format", "json").stdout)
    assert all(
        i["state"] == "RUNNING" and i["ready"] and i["pid"] and i["last_exit"] is None for i in doc["instances"]
    ), doc
    dep.run_ok("stop")


def test_status_counts_the_restarts_supervisord_made(deploy):
    import os
    import signal

    from support import wait_for

    dep = deploy(PAIR, ["a", "b"], mode="supervisord")
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")
    os.kill(dep.record("a")["pid"], signal.SIGKILL)
    wait_for(lambda: "restarts 1" in dep.runner("status", "a").stdout, 30, "supervisord to restart a")
    dep.run_ok("wait", "--timeout", "30")
    dep.run_ok("stop")
