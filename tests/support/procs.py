"""Processes as /proc shows them: state, process group, command line, and the processes a test started."""

from __future__ import annotations

import os
import signal
import subprocess
import typing as t
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def proc_state(pid: int) -> str | None:
    """The state letter of a process, None when it is gone (a zombie counts as gone: it is only not reaped)."""
    fields = _stat(pid)
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[0]


def alive(pid: int) -> bool:
    return proc_state(pid) is not None


def pgid(pid: int) -> int | None:
    """The process group of a live process; None for zombies and vanished ones."""
    fields = _stat(pid)
    if not fields or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[2])
    except (IndexError, ValueError):
        return None


def cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return []


def live_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and alive(int(p.name))]


def group_members(group: int) -> list[int]:
    """Live members of a process group."""
    return [pid for pid in live_pids() if pgid(pid) == group]


def processes_with(*tokens: str) -> list[int]:
    """Live processes (not this one) whose command line or environment mentions one of the tokens: a test's own
    processes, found by its unique directories."""
    marks = [tok.encode() for tok in tokens]
    found = []
    for pid in live_pids():
        if pid == os.getpid():
            continue
        text = b""
        for part in ("cmdline", "environ"):
            try:
                text += Path(f"/proc/{pid}/{part}").read_bytes()
            except OSError:
                pass
        if any(mark in text for mark in marks) and alive(pid):
            found.append(pid)
    return found


def kill_all(pids: list[int]) -> None:
    """SIGKILL each process and its group (when it leads one); gone ones are ignored."""
    for pid in pids:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def run(
    argv: t.Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    what: str | None = None,
    detail: t.Callable[[], str] | None = None,
    **kwargs: t.Any,
) -> subprocess.CompletedProcess[str]:
    """subprocess.run with its output captured as text and no stdin; when it has not finished after `timeout`
    seconds, the test fails saying what did not finish (and `detail()`, the state it left)."""
    kwargs = {"capture_output": True, "text": True, "stdin": subprocess.DEVNULL, "check": False, **kwargs}
    try:
        return subprocess.run(list(argv), timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as expired:
        import pytest

        said = "\n".join(str(x) for x in (expired.stdout, expired.stderr) if x)
        more = f"\n{detail()}" if detail else ""
        pytest.fail(
            f"{what or ' '.join(map(str, argv))} did not finish within {timeout:g} s\n{said}{more}", pytrace=False
        )
