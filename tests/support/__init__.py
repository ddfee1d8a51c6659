"""What the tests and the benchmarks share: paths, bounded waits, one-time builds, and (in the submodules) the
in-process CLI, loopback HTTP and free ports, /proc process checks, the SGLang stand-in, bundle builders and the
real SGLang parser.

    from support import ROOT, wait_for, built_once, not_here, load_module
    from support.cli import run_cli              # sglangc in-process (and the `sglangc` fixture)
    from support.net import free_port, free_ports, http
    from support.procs import proc_state, pgid, cmdline, live_pids, group_members, processes_with, kill_all
    from support.standin import standin, make_project   # tests/fakes/sglang_standin/build.py
    from support import bundlekit                 # wheels, wheelhouse and pixi-pack tars
    from support.real_sglang import real_sglang   # the real SGLang's catalog and argv parsing, once a session

tests/ is on sys.path (pytest's `pythonpath` setting; bench/ inserts it itself), so the package is `support`.
Stdlib only at import time, but for cli.py (click, pytest): bench/ imports it too.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import shutil
import sys
import time
import types
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "model-configs").glob("*.toml"))
CATALOG = ROOT / "compiler" / "catalogs" / "sglang-0.5.23.json"
FAKES_BIN = ROOT / "tests" / "fakes" / "bin"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IN_CI = os.environ.get("CI") == "true"

T = t.TypeVar("T")

# The UTC time that begins each line of the launch scripts, the installer and the entry hook.
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", re.MULTILINE)


def unstamped(text: str) -> str:
    """Text of the scripts' output without the UTC time at the start of each line."""
    return STAMP.sub("", text)


def load_module(name: str, path: Path) -> types.ModuleType:
    """A Python file that is not part of a package (a tool, the stand-in's build.py), imported as `name`."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before it runs: its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def built_once(tmp_path_factory: t.Any, name: str, build: t.Callable[[Path], object]) -> Path:
    """A directory `build(directory)` fills once per test session, whatever the number of pytest-xdist workers:
    they share it (under the session's base temporary directory) and the first one builds it, under a lock. What is
    in it is for reading only."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the one directory of this session that every worker sees
    target = root / f"built-{name}"
    with open(root / f"built-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".built").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            build(target)
            (target / ".built").touch()
    return target


def wait_for(
    predicate: t.Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.05,
    detail: t.Callable[[], str] | None = None,
) -> T:
    """Poll `predicate` until it returns something true (returned); fail the test after `timeout` seconds,
    saying what it waited for (and `detail()`, the state it was left in)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            import pytest

            message = f"timed out after {timeout:g} s waiting for {what}"
            pytest.fail(message + (f"\n{detail()}" if detail else ""), pytrace=False)
        time.sleep(interval)


def not_here(reason: str) -> t.NoReturn:
    """What a test needs is not on this machine (a tool, a platform): a skip on a developer's machine, a failure
    under CI=true, where .ci/run provides everything and nothing may go untested."""
    import pytest

    if IN_CI:
        pytest.fail(f"{reason}; under CI=true this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)
