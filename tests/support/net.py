"""Loopback networking for tests: free ports and a small HTTP client (no proxy, every call bounded)."""

from __future__ import annotations

import fcntl
import json
import os
import random
import socket
import tempfile
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

_HELD: dict[int, t.IO[str]] = {}  # port -> its lock file, held while this process lives


def _port_pool() -> range:
    """Ports below the kernel's ephemeral range: no client connection takes one between our choice and the
    server's bind."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(10000, max(min(low, 32768), 12000))


def _claim(port: int) -> bool:
    """Take the port for this process, against every other test process of the machine (pytest-xdist workers,
    other sessions): a lock file per port, held until this process ends."""
    locks = Path(tempfile.gettempdir()) / f"sglangc-test-ports-{os.getuid()}"
    locks.mkdir(exist_ok=True)
    lock = open(locks / str(port), "w")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return False
    _HELD[port] = lock
    return True


def _bindable(port: int) -> bool:
    """Nothing listens on the port on any address, and nothing lingers on it (no SO_REUSEADDR)."""
    with socket.socket() as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free right now, never handed out before to any test process still running."""
    pool = _port_pool()
    found: list[int] = []
    for port in random.sample(pool, len(pool)):
        if port not in _HELD and _bindable(port) and _claim(port):
            found.append(port)
            if len(found) == count:
                return found
    raise RuntimeError(f"no {count} free ports in {pool}")


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free ports (for ports that sglangc allocates from `master.base_port`)."""
    pool = _port_pool()
    for start in random.sample(range(pool.start, pool.stop - count), 200):
        run = range(start, start + count)
        if all(p not in _HELD and _bindable(p) for p in run) and all(_claim(p) for p in run):
            return start
    raise RuntimeError(f"no {count} consecutive free ports in {pool}")


def free_port() -> int:
    return free_ports(1)[0]


class Reply(t.NamedTuple):
    """status is None when nothing answered (refused, reset, timed out)."""

    status: int | None
    body: bytes

    def json(self) -> t.Any:
        return json.loads(self.body)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(
    port: int, path: str, *, body: t.Any = None, key: str | None = None, timeout: float = 5, host: str = "127.0.0.1"
) -> Reply:
    """GET `path` (POST of `body` as JSON when given), with `key` as a bearer token when given."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{host}:{port}{path}", data=data, headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Reply(response.status, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.read())
    except OSError:
        return Reply(None, b"")
