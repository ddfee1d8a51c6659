"""check-and-run-sglang.sh end to end: real processes on loopback, with real supervisord and without one.

The stand-in SGLang server (tests/fakes/sglang_standin) binds late, forks two children that die with it and
records its argv and environment; every test checks what is left in /proc when it is done.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import sys
from pathlib import Path

import pytest

from support import unstamped, wait_for
from support.net import http
from support.procs import cmdline, group_members, proc_state, processes_with

from .conftest import MODES, ONE, Deployment, one

THREE = """
[instances.a]
model_path = "<<model>>"
served_model_name = "model-a"
port = <<port_a>>
gpu_ids = [0]
env = { SGLANG_STANDIN_RECORD = "<<record_a>>", SGLANG_STANDIN_LOAD_SECONDS = "1.5" }

[instances.b]
model_path = "<<model>>"
served_model_name = "model-b"
port = <<port_b>>
gpu_ids = [1]
depends_on = ["a"]
env = { SGLANG_STANDIN_RECORD = "<<record_b>>" }

[instances.c]
model_path = "<<model>>"
served_model_name = "model-c"
port = <<port_c>>
gpu_ids = [2]
env = { SGLANG_STANDIN_RECORD = "<<record_c>>" }
"""


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_nothing_left(dep: Deployment, records: dict[str, dict]) -> None:
    """No server, child or member of their process groups, no launch script and no supervisord is alive."""

    def left():
        pids = [p for r in records.values() for p in (r["pid"], *r["children"]) if proc_state(p)]
        pids += [p for r in records.values() for p in group_members(r["pgid"])]
        pids += processes_with(str(dep.root), str(dep.run_dir))
        return sorted(set(pids))

    # stop returns once the servers are gone; allow their children a moment to be reaped by the kernel
    wait_for(
        lambda: not left(),
        5,
        "every process of the deployment to be gone",
        detail=lambda: f"processes left: {[(p, b' '.join(cmdline(p))) for p in left()]}",
    )


@pytest.mark.parametrize("mode", MODES)
def test_start_wait_stop(deploy, mode):
    dep = deploy(THREE, ["a", "b", "c"], mode=mode)
    started = dep.run_ok("start")
    if mode == "supervisord":
        assert "starting supervisord" in started.stdout
        assert dep.supervisord_pid()
    else:
        assert not (dep.run_dir / "supervisord.pid").exists()
        assert sorted(p.name for p in (dep.run_dir / "pids").iterdir()) == ["a.pid", "b.pid", "c.pid"]

    waited = dep.run_ok("wait", "--timeout", "30")
    for name in "abc":
        assert f"{name}: ready in " in waited.stdout
        status, body = http(dep.ports[name], "/v1/models")
        assert status == 200
        assert [m["id"] for m in json.loads(body)["data"]] == [f"model-{name}"]
    records = {n: dep.record(n) for n in "abc"}

    # b depends on a: it starts (writes its record) only after a has loaded (1.5 s) and answers /health.
    a_ready = dep.record_path("a").stat().st_mtime + 1.5
    assert dep.record_path("b").stat().st_mtime >= a_ready
    assert dep.record_path("c").stat().st_mtime < a_ready  # c is independent: it did not wait
    log_b = dep.log("b")
    assert log_b.index("launch-b: waiting for a") < log_b.index("launch-b: a is ready") < log_b.index("server_args=")

    # RUNNING once up for start_seconds (supervisord's startsecs), which a fast stand-in may outrun
    status = wait_for(lambda: (done := dep.runner("status")).returncode == 0 and done, 10, "all RUNNING")
    lines = status.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert line.split()[1:3] == ["RUNNING", "ready"], line

    # private runtime directory, private logs
    for sub in ("", "pids", "secrets", "supervisor"):
        assert mode_of(dep.run_dir / sub) == 0o700
    for name in "abc":
        assert mode_of(dep.log_dir / f"sglang-server-{name}.log") == 0o600

    again = dep.run_ok("start")  # harmless when everything runs
    assert {n: dep.record(n)["pid"] for n in "abc"} == {n: r["pid"] for n, r in records.items()}
    if mode == "fallback":
        assert "already running" in again.stdout

    stopped = dep.run_ok("stop", timeout=60)
    assert_nothing_left(dep, records)
    for name in "abc":
        assert "Shutdown complete." in dep.log(name)  # SIGTERM reached the server itself: it drained
    if mode == "supervisord":
        assert "Shut down" in stopped.stdout
        assert not (dep.run_dir / "supervisor.sock").exists()
    assert not list((dep.run_dir / "pids").iterdir())
    assert dep.runner("status").returncode == 3


@pytest.mark.parametrize("mode", MODES)
def test_stop_and_start_one(deploy, mode):
    dep = deploy(THREE, ["a", "b", "c"], mode=mode)
    started = dep.run_ok("start", "c", "a")
    if mode == "fallback":
        dep.run_ok("wait", "a", "c", "--timeout", "30")
        assert not dep.record_path("b").exists()  # only what was asked for
        dep.run_ok("start", "b")
    else:
        # a new supervisord starts every enabled instance itself (autostart = master.enable), and says so
        assert "note: supervisord starts the instances with autostart by itself" in started.stdout
    dep.run_ok("wait", "--timeout", "30")
    first = dep.record("c")
    dep.run_ok("stop", "c")
    wait_for(lambda: not proc_state(first["pid"]), 5, "c to stop")
    assert http(dep.ports["a"], "/health")[0] == 200  # the others go on
    if mode == "supervisord":
        assert proc_state(dep.supervisord_pid())
    done = dep.runner("status")
    assert done.returncode == 3
    states = [line.split()[:2] for line in done.stdout.splitlines()]
    assert states == [["a", "RUNNING"], ["c", "STOPPED"], ["b", "RUNNING"]]
    dep.run_ok("start", "c")
    dep.run_ok("wait", "c", "--timeout", "30")
    second = dep.record("c")
    assert second["pid"] != first["pid"]
    dep.run_ok("restart", "c")
    dep.run_ok("wait", "--timeout", "30")
    assert dep.record("c")["pid"] not in (first["pid"], second["pid"])
    wait_for(lambda: dep.runner("status").returncode == 0, 10, "all RUNNING")
    records = {n: dep.record(n) for n in "abc"}
    dep.run_ok("stop")
    assert_nothing_left(dep, records | {"first": first, "second": second})


@pytest.mark.parametrize("mode", MODES)
def test_crash_after_ready(deploy, mode, tmp_path):
    gate = tmp_path / "crash-gate"
    gate.touch()
    # crash 2 s after ready: later than start_seconds (1), so supervisord counts it as a crash, not a failed start
    dep = one(deploy, mode, f', SGLANG_STANDIN_CRASH_AFTER = "2", SGLANG_STANDIN_CRASH_FILE = "{gate}"')
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")
    first = dep.record("x")
    wait_for(lambda: not proc_state(first["pid"]), 10, "the crash")
    if mode == "supervisord":
        # supervisord restarts it (autorestart=unexpected): a new server, ready again
        wait_for(lambda: dep.record("x")["pid"] != first["pid"], 15, "a restarted server")
        gate.unlink()  # no second crash
        dep.run_ok("wait", "--timeout", "30")
        second = dep.record("x")
        assert http(dep.ports["x"], "/health")[0] == 200
        assert not [p for p in (first["pid"], *first["children"]) if proc_state(p)]
        dep.run_ok("stop")
        assert_nothing_left(dep, {"first": first, "second": second})
    else:
        gate.unlink()
        done = dep.runner("wait", "--timeout", "10")
        assert done.returncode == 1
        assert "x: failed" in done.stdout
        assert "Crash on demand" in done.stdout  # the log's last lines
        status = dep.runner("status")
        assert status.returncode == 3
        assert status.stdout.split()[:2] == ["x", "EXITED"]
        dep.run_ok("stop")
        assert_nothing_left(dep, {"first": first})


@pytest.mark.parametrize("mode", MODES)
def test_crash_loop(deploy, mode):
    dep = one(deploy, mode, ', SGLANG_STANDIN_CRASH_AT_START = "1"')
    started = dep.runner("start")
    waited = dep.runner("wait", "--timeout", "30")
    assert waited.returncode == 1, waited.stdout
    assert "x: failed" in waited.stdout
    assert "Crash on demand at start" in waited.stdout
    status = dep.runner("status")
    assert status.returncode == 3
    line = status.stdout.strip()
    if mode == "supervisord":
        assert started.returncode == 1
        assert line.split()[:2] == ["x", "FATAL"]
        assert "last exit: exit status 1;" in line
    else:
        assert line.split()[:2] == ["x", "EXITED"]
    assert line.endswith(f"see: {dep.runner_path} logs x")
    logs = dep.runner("logs", "x")
    assert logs.returncode == 0 and "Crash on demand at start" in logs.stdout


@pytest.mark.parametrize("mode", MODES)
def test_failed_dependency_fails_its_dependant(deploy, mode):
    """a never starts: wait reports b (which waits for a) as failed too, at once, and c as ready."""
    dep = deploy(
        THREE.replace('SGLANG_STANDIN_LOAD_SECONDS = "1.5"', 'SGLANG_STANDIN_CRASH_AT_START = "1"'),
        ["a", "b", "c"],
        mode=mode,
    )
    dep.runner("start")
    # at once: long before the 60 s of --timeout (or master.ready_timeout) would end a wait for b
    waited = dep.runner("wait", "--timeout", "60", timeout=30)
    assert waited.returncode == 1
    assert "a: failed (" in waited.stdout
    assert "b: failed (it waits for a, which failed)" in waited.stdout
    assert "c: ready in " in waited.stdout
    dep.run_ok("stop")
    assert_nothing_left(dep, {"c": dep.record("c")})


@pytest.mark.parametrize("mode", MODES)
def test_port_taken(deploy, mode):
    dep = one(deploy, mode)
    port = dep.ports["x"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        started = dep.runner("start")
        assert started.returncode == 1
        waited = dep.runner("wait", "--timeout", "30")
    assert waited.returncode == 1
    message = f"launch-x: error: port {port} is already in use"
    assert message in dep.log("x")
    assert message in waited.stdout
    if mode == "supervisord":
        assert "exited: sglang-x (exit status 13; not expected)" in (dep.run_dir / "supervisord.log").read_text()
        assert "last exit: exit status 13" in waited.stdout
    else:
        assert "launch-x.sh exited with status 13" in dep.log("x")
        assert "failed at once (exit status 13)" in started.stdout
    assert not dep.record_path("x").exists()  # the server never started


@pytest.mark.parametrize("mode", MODES)
def test_api_key(deploy, mode):
    key = "sk-e2e-" + os.urandom(8).hex() + "'q\"$(x)"
    dep = deploy(
        ONE.replace("<<extra_env>>", "") + 'api_key_env = "E2E_API_KEY"\n', ["x"], mode=mode, env={"E2E_API_KEY": key}
    )
    outputs = [dep.run_ok("start"), dep.run_ok("wait", "--timeout", "30"), dep.runner("status")]
    port = dep.ports["x"]
    assert http(port, "/v1/models")[0] == 401
    assert http(port, "/v1/models", key="wrong")[0] == 401
    assert http(port, "/v1/models", key=key)[0] == 200
    record = dep.record("x")
    assert record["args"]["api_key"] == key

    secret = dep.run_dir / "secrets" / "x.yaml"
    assert mode_of(secret) == 0o600 and mode_of(secret.parent) == 0o700 and mode_of(dep.run_dir) == 0o700
    for path in dep.out.rglob("*"):
        assert path.is_dir() or key.encode() not in path.read_bytes(), path
    for pid in {*processes_with(str(dep.root), str(dep.run_dir)), record["pid"], *record["children"]}:
        assert key.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes(), pid
    launch_lines = [line for line in unstamped(dep.log("x")).splitlines() if line.startswith("launch-x:")]
    assert launch_lines and not [line for line in launch_lines if key in line]
    raw = dep.log("x")  # SGLang logs its arguments, key included: filtered before the log file sees it
    assert "api_key='<redacted>'" in raw and key not in raw and repr(key)[1:-1] not in raw
    outputs.append(dep.run_ok("logs", "x"))  # the runner redacts the key SGLang logs (Python's repr of it)
    assert "api_key='<redacted>'" in outputs[-1].stdout
    outputs.append(dep.run_ok("stop"))
    for done in outputs:
        for form in (key, repr(key)[1:-1]):
            assert form not in done.stdout + done.stderr
    assert not secret.exists()
    assert_nothing_left(dep, {"x": record})


@pytest.mark.parametrize("mode", ["supervisord"])
def test_stale_socket_and_pidfile(deploy, mode):
    """supervisord killed with -9 (and its servers with it, as a container restart would) blocks nothing."""
    dep = one(deploy, mode)
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")
    first = dep.record("x")
    supervisord = dep.supervisord_pid()
    assert supervisord
    os.kill(supervisord, signal.SIGKILL)
    os.killpg(first["pgid"], signal.SIGKILL)
    wait_for(lambda: not group_members(first["pgid"]), 5, "the killed server")
    assert (dep.run_dir / "supervisor.sock").exists() and (dep.run_dir / "supervisord.pid").exists()
    assert dep.runner("status").returncode == 3
    started = dep.run_ok("start")
    assert "starting supervisord" in started.stdout
    dep.run_ok("wait", "--timeout", "30")
    assert dep.record("x")["pid"] != first["pid"]
    dep.run_ok("stop")
    assert_nothing_left(dep, {"x": dep.record("x")})


@pytest.mark.parametrize("mode", ["fallback"])
def test_fallback_stale_pid_file(deploy, mode):
    """A pid file naming a process that is not ours (after a restart) does not stop a start, and is not killed."""
    dep = one(deploy, mode)
    (dep.run_dir / "pids").mkdir(parents=True, exist_ok=True)
    for junk in ("1\n", "0", "-1", "x y\n", ""):  # never a reason to signal a group like -1
        (dep.run_dir / "pids" / "x.pid").write_text(junk)
        assert dep.runner("status").stdout.split()[:2] == ["x", "STOPPED"]
        dep.run_ok("stop")
    (dep.run_dir / "pids" / "x.pid").write_text(f"{os.getpid()}\n")  # this pytest process: alive, not ours
    assert dep.runner("status").stdout.split()[:2] == ["x", "EXITED"]
    dep.run_ok("stop", "x")
    assert proc_state(os.getpid())
    (dep.run_dir / "pids" / "x.pid").write_text(f"{os.getpid()}\n")
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")
    assert dep.record("x")["pid"] != os.getpid()
    dep.run_ok("stop")
    assert_nothing_left(dep, {"x": dep.record("x")})


def test_usage_errors(deploy):
    dep = one(deploy, "fallback")
    for args in (
        ["bogus"],
        ["start", "nope"],
        ["stop", "x", "nope"],
        ["logs"],
        ["logs", "nope"],
        ["wait", "--timeout", "soon"],
        ["wait", "--bogus"],
        ["status", "nope"],
        ["status", "--format", "yaml"],
    ):
        done = dep.runner(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stdout == "" and len(done.stderr.splitlines()) == 1, (args, done.stderr)
        assert done.stderr.startswith("check-and-run-sglang.sh: error: ")
    for flag in ("-h", "--help"):
        done = dep.runner(flag)
        assert done.returncode == 0 and "wait [--timeout S]" in done.stdout and "instances: x" in done.stdout
    assert dep.runner().returncode == 2
    assert dep.runner("logs", "x").returncode == 1  # no log yet


def test_supervisord_from_env(deploy):
    """AUTO_INFER_SGLANG_SUPERVISORD wins over $PREFIX/bin and PATH; a wrong value is one clear error."""
    dep = one(deploy, "fallback")  # no supervisord in $PREFIX/bin nor on PATH
    chosen = shutil.which("supervisord", path=str(Path(sys.executable).parent))
    assert chosen, "supervisor is a test dependency"
    dep.env["AUTO_INFER_SGLANG_SUPERVISORD"] = chosen
    started = dep.run_ok("start")
    assert f"starting supervisord: {chosen} -c {dep.out}/supervisord.conf" in started.stdout
    dep.run_ok("wait", "--timeout", "30")
    record = dep.record("x")
    dep.run_ok("stop")
    assert_nothing_left(dep, {"x": record})
    for bad in ("/nonexistent/supervisord", "no-such-supervisord", str(dep.out)):
        done = dep.runner("status", env={**dep.env, "AUTO_INFER_SGLANG_SUPERVISORD": bad})
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert "AUTO_INFER_SGLANG_SUPERVISORD=" in done.stderr


def test_stop_after_supervisord_was_killed(deploy):
    """kill -9 of supervisord leaves its servers running; `stop` still finds them (pid files) and ends them."""
    d = one(deploy, "supervisord")
    d.run_ok("start")
    d.run_ok("wait", "--timeout", "30")
    server = d.record("x")["pid"]
    supervisord = int((d.run_dir / "supervisord.pid").read_text())
    os.kill(supervisord, signal.SIGKILL)
    wait_for(lambda: proc_state(supervisord) is None, 10, "supervisord to die")
    assert proc_state(server), "the server outlives a killed supervisord"
    d.run_ok("stop", timeout=60)
    wait_for(lambda: not group_members(server), 10, "the server's process group to be gone")
