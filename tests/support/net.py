"""Loopback networking for tests: free ports and a small HTTP client (no proxy, every call bounded)."""

from __future__ import annotations

import json
import os
import random
import socket
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

_HANDED_OUT: set[int] = set()


def _port_pool() -> range:
    """Ports below the kernel's ephemeral range (no client connection takes one between our choice and the
    server's bind), split between pytest-xdist workers so that two workers never choose the same port."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = min(low, 32768)
    base, top = 10000, max(low, 12000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    index = int(worker) % workers if worker.isdigit() else 0
    size = (top - base) // workers
    return range(base + index * size, base + (index + 1) * size)


def _bindable(port: int) -> bool:
    """Nothing listens on the port on any address, and nothing lingers on it (no SO_REUSEADDR)."""
    with socket.socket() as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free right now, never handed out before in this process."""
    pool = _port_pool()
    found: list[int] = []
    for port in random.sample(pool, len(pool)):
        if port not in _HANDED_OUT and _bindable(port):
            _HANDED_OUT.add(port)
            found.append(port)
            if len(found) == count:
                return found
    raise RuntimeError(f"no {count} free ports in {pool}")


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
