"""End-to-end fixtures: compiled deployments run against the SGLang stand-in, with real supervisord or without.

Every process a test starts is found again at teardown (by the test's unique directories in its command line
or environment) and killed, even when the test failed; every wait is bounded.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from sglangc.cli import cli

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "compiler" / "catalogs" / "sglang-0.5.23.json"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MODES = ("supervisord", "fallback")

_spec = importlib.util.spec_from_file_location("sglang_standin_build", ROOT / "tests/fakes/sglang_standin/build.py")
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)


def make_project(project: Path, *, supervisor: bool) -> Path:
    """A pixi project dir whose default environment ($PREFIX) holds the stand-in (and supervisor if asked)."""
    extras = ("pyyaml", "supervisor") if supervisor else ("pyyaml",)
    standin.make_prefix(project / ".pixi" / "envs" / "default", CATALOG, extra_packages=extras)
    return project


@pytest.fixture(scope="session")
def projects(tmp_path_factory) -> dict[str, Path]:
    """mode → AUTO_INFER_SGLANG_PIXI_PROJECT_DIR: with supervisord in $PREFIX/bin, or with none anywhere."""
    if not CATALOG.exists():
        pytest.skip(f"{CATALOG} is missing")
    if shutil.which("supervisord", path=SYSTEM_PATH):
        pytest.fail(f"a supervisord on {SYSTEM_PATH}: the fallback mode cannot be tested here")
    base = tmp_path_factory.mktemp("pixi")
    return {
        "supervisord": make_project(base / "with-supervisor", supervisor=True),
        "fallback": make_project(base / "plain", supervisor=False),
    }


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def toml_str(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def fill(text: str, fields: dict[str, str]) -> str:
    for key, value in fields.items():
        text = text.replace(f"<<{key}>>", value)
    assert "<<" not in text, text
    return text


def wait_for(predicate: t.Callable[[], t.Any], timeout: float, what: str, interval: float = 0.1) -> t.Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def http(port: int, path: str, key: str | None = None, timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()
    except OSError:
        return 0, b""


def proc_state(pid: int) -> str | None:
    """The state letter of a process, None when it is gone (zombies count as gone: they are only not reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state = stat.rpartition(")")[2].split()[0]
    return None if state in ("Z", "X") else state


def proc_pgid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def live_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and proc_state(int(p.name))]


def group_members(pgid: int) -> list[int]:
    return [pid for pid in live_pids() if proc_pgid(pid) == pgid]


def cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return []


def processes_with(*tokens: str) -> list[int]:
    """Live processes (not this one) whose command line or environment mentions one of the tokens."""
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
        if any(mark in text for mark in marks) and proc_state(pid):
            found.append(pid)
    return found


@dataclasses.dataclass
class Deployment:
    """A compiled config in a temporary directory, driven through its check-and-run-sglang.sh."""

    mode: str
    root: Path  # tmp_path of the test: config, out/, logs/, records, models
    run_dir: Path  # short: the supervisord socket lives here
    out: Path
    log_dir: Path
    config: Path
    env: dict[str, str]
    ports: dict[str, int]
    seen_pids: set[int] = dataclasses.field(default_factory=set)

    @property
    def runner_path(self) -> Path:
        return self.out / "check-and-run-sglang.sh"

    def runner(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(self.runner_path), *args], env=env or self.env, cwd=self.root, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def run_ok(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        done = self.runner(*args, timeout=timeout)
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}\n{self.all_logs()}"
        return done

    def record_path(self, name: str) -> Path:
        return self.root / f"record-{name}.json"

    def record(self, name: str) -> dict:
        data = json.loads(self.record_path(name).read_text(encoding="utf-8"))
        self.seen_pids.update([data["pid"], *data["children"]])
        return data

    def log(self, name: str) -> str:
        path = self.log_dir / f"sglang-server-{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def all_logs(self) -> str:
        parts = [f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.log_dir.glob("*.log"))]
        sv = self.run_dir / "supervisord.log"
        if sv.exists():
            parts.append(f"--- supervisord.log\n{sv.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def supervisord_pid(self) -> int | None:
        try:
            return int((self.run_dir / "supervisord.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def leftovers(self) -> list[int]:
        """Every live process of this deployment: recorded servers and children, their groups, and anything
        that names the test's directories (launch scripts, supervisord, servers, their children)."""
        pids = {p for p in self.seen_pids if proc_state(p)}
        for pid in list(self.seen_pids):
            pids.update(group_members(pid))
        pids.update(processes_with(str(self.root), str(self.run_dir)))
        return sorted(pids)

    def kill_all(self) -> None:
        for pid in self.leftovers():
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        wait_for(lambda: not self.leftovers(), 10, "killed processes to go")


@pytest.fixture
def deploy(request, projects, tmp_path) -> t.Iterator[t.Callable[..., Deployment]]:
    """deploy(instances_toml, names, mode=..., master=..., env=...) → a compiled Deployment (not started).

    `instances_toml` may use <<port_NAME>>, <<record_NAME>> (a path for SGLANG_STANDIN_RECORD), <<root>> and
    <<model>> (a model directory with a config.json).
    """
    made: list[Deployment] = []
    run_dirs: list[Path] = []

    def make(instances: str, names: t.Sequence[str], *, mode: str, master: str = "", env: dict | None = None,
             project: Path | None = None, log_name: str = "logs", run_name: str = "run") -> Deployment:
        run_dir = Path(tempfile.mkdtemp(prefix="sg-", dir="/tmp"))
        run_dirs.append(run_dir)
        model = tmp_path / "model"
        model.mkdir(exist_ok=True)
        (model / "config.json").write_text("{}")
        ports = dict(zip(names, free_ports(len(names))))
        fields = {"root": str(tmp_path), "model": str(model)}
        fields.update({f"port_{n}": str(p) for n, p in ports.items()})
        fields.update({f"record_{n}": str(tmp_path / f"record-{n}.json") for n in names})
        log_dir = tmp_path / log_name
        text = "\n".join([
            "version = 1",
            'sglang_version = "0.5.23"',
            "[master]",
            f"pixi_project_dir = {toml_str(str(project or projects[mode]))}",
            f"log_dir = {toml_str(str(log_dir))}",
            f"runtime_dir = {toml_str(str(run_dir / run_name))}",
            "start_seconds = 1",
            "start_retries = 1",
            "stop_timeout = 5",
            "ready_timeout = 60",
            master,
            fill(instances, fields),
        ])
        config = tmp_path / "config.toml"
        config.write_text(text, encoding="utf-8")
        out = tmp_path / "out"
        done = CliRunner().invoke(cli, ["compile", str(config), "-o", str(out)], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        full_env = {
            "PATH": SYSTEM_PATH,
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "SGLANG_STANDIN_LOAD_SECONDS": "0.3",
            "SGLANG_STANDIN_DRAIN_SECONDS": "0.1",
            **(env or {}),
        }
        dep = Deployment(mode, tmp_path, run_dir / run_name, out, log_dir, config, full_env, ports)
        made.append(dep)
        return dep

    yield make
    for dep in made:
        try:
            dep.runner("stop", timeout=60)
        except subprocess.TimeoutExpired:
            pass
        dep.kill_all()
    for run_dir in run_dirs:
        shutil.rmtree(run_dir, ignore_errors=True)
