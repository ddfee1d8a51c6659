"""Processes as /proc shows them: state, process group, command line, and the processes a test started."""

from __future__ import annotations

import os
import signal
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
