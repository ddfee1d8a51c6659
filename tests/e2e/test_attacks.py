"""The runtime against another local user (uid 65534 plays them: the files they plant are theirs) and against a
host that lies: planted log files and directories, foreign or symlinked runtime directories, stale pid files,
a supervisord killed with -9, an old supervisord log, and an entrypoint's pipe the servers must not keep."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import typing as t
from pathlib import Path

import pytest

from support import wait_for
from support.procs import proc_state

from .conftest import MODES, Deployment

OTHER = 65534  # nobody: the other local user
KEY = "sk-attack-test-key-5521"

TWO = """
[instances.a]
model_path = "<<model>>"
port = <<port_a>>
gpu_ids = [0]
api_key_env = "ATTACK_KEY"
env = { SGLANG_STANDIN_RECORD = "<<record_a>>" }

[instances.b]
model_path = "<<model>>"
port = <<port_b>>
gpu_ids = [1]
env = { SGLANG_STANDIN_RECORD = "<<record_b>>" }
"""


def two(deploy, mode: str, **kwargs) -> Deployment:
    dep = deploy(TWO, ["a", "b"], mode=mode, env={"ATTACK_KEY": KEY}, **kwargs)
    return dep


def theirs(path: Path, mode: int = 0o644) -> Path:
    os.chown(path, OTHER, OTHER, follow_symlinks=False)
    if not path.is_symlink():
        path.chmod(mode)
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def world() -> t.Iterator[Path]:
    """A directory every user can reach (the test's own tmp_path is root's, mode 0700), holding a shared log
    directory like /tmp (mode 1777) and the other user's home."""
    top = Path(tempfile.mkdtemp(prefix="sgw-", dir="/tmp"))
    top.chmod(0o755)
    (top / "shared").mkdir()
    (top / "shared").chmod(0o1777)
    (top / "home").mkdir()
    os.chown(top / "home", OTHER, OTHER)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def as_other(*argv: str | Path) -> None:
    """Run a command as the other user (uid 65534), as an attacker would."""
    subprocess.run(
        ["setpriv", f"--reuid={OTHER}", f"--regid={OTHER}", "--clear-groups", *map(str, argv)],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.mark.parametrize("mode", MODES)
def test_files_planted_in_a_shared_log_dir_are_never_followed(deploy, mode, world):
    """log_dir = a /tmp-like directory: the other user plants the old log names as links and files of theirs."""
    shared, victim = world / "shared", world / "home" / "victim.txt"
    as_other("sh", "-c", f'echo theirs > "{victim}" && chmod 0644 "{victim}"')
    as_other("ln", "-s", victim, shared / "sglang-server-a.log")
    as_other("ln", "-s", world / "home" / "created-by-root", shared / "sglang-server-b.log")
    dep = two(deploy, mode, log_name=str(shared))
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")
    assert victim.read_text() == "theirs\n" and mode_of(victim) == 0o644 and victim.stat().st_uid == OTHER
    assert not (world / "home" / "created-by-root").exists()
    private = shared / "sglangc"
    assert mode_of(private) == 0o700 and private.stat().st_uid == os.geteuid()
    for name in "ab":
        log = private / f"sglang-server-{name}.log"
        assert mode_of(log) == 0o600 and "server_args=" in log.read_text()
    dep.run_ok("stop")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("plant", ["their directory", "a symlink to their directory", "our directory, 0777"])
def test_a_planted_private_log_dir_is_refused(deploy, mode, plant, world):
    shared, bait = world / "shared", world / "home" / "bait"
    as_other("mkdir", "-m", "0777", bait)
    private = shared / "sglangc"
    if plant == "their directory":
        as_other("mkdir", "-m", "0777", private)
    elif plant == "a symlink to their directory":
        as_other("ln", "-s", bait, private)
    else:
        private.mkdir()
        private.chmod(0o777)
    dep = two(deploy, mode, log_name=str(shared))
    done = dep.runner("start")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "unsafe log directory" in done.stderr and done.stderr.count("\n") == 1
    assert list(bait.iterdir()) == [] and mode_of(bait) == 0o777
    assert not dep.record_path("a").exists(), "nothing started"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("plant", ["their directory", "a symlink", "a parent of theirs"])
def test_a_foreign_or_symlinked_runtime_dir_is_refused(deploy, mode, plant, tmp_path):
    dep = two(deploy, mode)
    run = dep.run_dir
    target = tmp_path / "target"
    target.mkdir()
    target.chmod(0o755)
    if plant == "their directory":
        run.mkdir()
        theirs(run, 0o755)
    elif plant == "a symlink":
        run.symlink_to(target)
    else:
        theirs(run.parent, 0o755)
    done = dep.runner("start")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "unsafe runtime directory" in done.stderr
    assert list(target.iterdir()) == [] and mode_of(target) == 0o755, "nothing made or chmodded through it"
    if plant == "a parent of theirs":
        os.chown(run.parent, os.geteuid(), os.getegid())
    else:  # pid files there could name any process: not read either
        for command in ("status", "stop"):
            assert dep.runner(command).returncode == 4
    assert not dep.record_path("a").exists()


@pytest.mark.parametrize("mode", MODES)
def test_a_stale_pid_file_naming_another_server_is_not_trusted(deploy, mode):
    """After a container restart with a persistent runtime dir, a.pid may name b's server by now."""
    dep = two(deploy, mode, master="enable = false")  # supervisord starts only what is named
    dep.run_ok("start", "b")
    dep.run_ok("wait", "--timeout", "30", "b")
    b_pid = dep.record("b")["pid"]
    (dep.run_dir / "pids").mkdir(exist_ok=True)
    for forged in (f"{b_pid}\n", (dep.run_dir / "pids" / "b.pid").read_text()):
        (dep.run_dir / "pids" / "a.pid").write_text(forged)
        dep.run_ok("stop", "a")
        assert proc_state(b_pid), "stop a must not kill b"
    (dep.run_dir / "pids" / "a.pid").write_text((dep.run_dir / "pids" / "b.pid").read_text())
    started = dep.run_ok("start", "a")
    assert "already running" not in started.stdout
    dep.run_ok("wait", "--timeout", "30")
    assert dep.record("a")["pid"] != b_pid and proc_state(b_pid)
    dep.run_ok("stop")


def test_orphans_of_a_killed_supervisord_are_shown_and_replaced(deploy):
    dep = two(deploy, "supervisord")
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")
    old = {n: dep.record(n)["pid"] for n in "ab"}
    supervisord = dep.supervisord_pid()
    assert supervisord
    os.kill(supervisord, signal.SIGKILL)
    wait_for(lambda: proc_state(supervisord) is None, 10, "supervisord to die")
    status = dep.runner("status")
    assert status.returncode == 3
    for line in status.stdout.splitlines():
        assert line.split()[1] == "UNSUPERVISED", line
    assert all(proc_state(p) for p in old.values())
    started = dep.runner("start")
    assert started.returncode == 0, started.stdout + started.stderr
    assert started.stdout.count("replacing the server that runs without supervisord") == 2
    dep.run_ok("wait", "--timeout", "30")
    new = {n: dep.record(n)["pid"] for n in "ab"}
    assert all(proc_state(p) is None for p in old.values()) and set(new.values()).isdisjoint(old.values())
    status = dep.run_ok("status")
    assert [line.split()[1] for line in status.stdout.splitlines()] == ["RUNNING", "RUNNING"]
    dep.run_ok("stop")


def test_last_exit_comes_from_the_current_supervisord_run(deploy):
    dep = two(deploy, "supervisord")
    dep.run_dir.mkdir(parents=True, exist_ok=True)
    dep.run_dir.chmod(0o700)
    (dep.run_dir / "supervisord.log").write_text(
        "2020-01-01 00:00:00,000 INFO supervisord started with pid 1\n"
        "2020-01-01 00:00:01,000 INFO exited: sglang-b (exit status 13; not expected)\n"
    )
    (dep.out / "launch-b.sh").chmod(0o644)  # supervisord cannot spawn it: FATAL without any exit in this run
    dep.runner("start")
    status = dep.runner("status")
    line = next(x for x in status.stdout.splitlines() if x.startswith("b "))
    assert "FATAL" in line and "exit status 13" not in line, line
    dep.run_ok("stop")


@pytest.mark.parametrize("mode", MODES)
def test_servers_keep_no_descriptor_of_the_entrypoint(deploy, mode):
    """The entrypoint sources the hook holding a pipe on fd 7: once it is done, the pipe sees EOF, although
    supervisord (or the servers) go on running."""
    dep = two(deploy, mode)
    read_end, write_end = os.pipe()
    hook = subprocess.Popen(
        ["bash", "-c", f'exec 7>&{write_end}; exec {write_end}>&-; . "$0"', str(dep.out / "entry-hook.sh")],
        env={**dep.env, "AUTO_INFER_SGLANG_ON_BOOT": "1"},
        pass_fds=(write_end,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    assert hook.wait(timeout=60) == 0
    os.set_blocking(read_end, False)

    def closed_by_all() -> bool:
        try:
            return os.read(read_end, 1) == b""
        except BlockingIOError:
            return False

    try:
        wait_for(closed_by_all, 10, "every process the hook started to let go of the entrypoint's pipe")
    finally:
        os.close(read_end)
    dep.run_ok("wait", "--timeout", "30")
    dep.run_ok("stop")


def test_wait_refuses_a_timeout_that_would_overflow(deploy):
    dep = two(deploy, "fallback")
    for value in ("99999999999999999999", "1e9", "-1"):
        done = dep.runner("wait", "--timeout", value)
        assert done.returncode == 2 and "whole seconds" in done.stderr


SECRET_FLAGS = """
[instances.s]
model_path = "<<model>>"
port = <<port_s>>
gpu_ids = [0]
api_key_env = "ATTACK_KEY"
server_args_env = { admin-api-key = "ADMIN_SECRET", ssl-keyfile-password = "PEM_PASSWORD" }
env = { SGLANG_STANDIN_RECORD = "<<record_s>>" }
"""


@pytest.mark.parametrize("mode", MODES)
def test_secret_flags_reach_sglang_only_through_the_private_file(deploy, mode):
    secrets = {"ADMIN_SECRET": "adm-'q\"uote-771", "PEM_PASSWORD": "pem-pass-991", "ATTACK_KEY": KEY}
    dep = deploy(SECRET_FLAGS, ["s"], mode=mode, env=secrets)
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")
    record = dep.record("s")
    assert record["args"]["admin_api_key"] == secrets["ADMIN_SECRET"]
    assert record["args"]["ssl_keyfile_password"] == secrets["PEM_PASSWORD"]
    assert record["args"]["api_key"] == KEY
    secret_file = dep.run_dir / "secrets" / "s.yaml"
    assert mode_of(secret_file) == 0o600
    shown = [
        dep.runner("logs", "s").stdout,
        dep.runner("status").stdout,
        (dep.out / "launch-s.sh").read_text(),
        subprocess.run(
            ["bash", str(dep.out / "launch-s.sh"), "--dry-run"], env=dep.env, capture_output=True, text=True, check=True
        ).stdout,
    ]
    for pid in [record["pid"], *record["children"]]:
        shown.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
    for value in secrets.values():
        assert all(value not in text for text in shown), value
    dep.run_ok("stop")
    assert not secret_file.exists()
