"""End-to-end fixtures: compiled deployments run against the SGLang stand-in, with real supervisord or without.

Every process a test starts is found again at teardown (by the test's unique directories in its command line
or environment) and killed, even when the test failed; every wait is bounded.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
import typing as t
from pathlib import Path

import pytest

from support import CATALOG, SYSTEM_PATH, built_once, wait_for
from support.cli import run_cli
from support.net import free_ports
from support.procs import group_members, kill_all, proc_state, processes_with, run
from support.standin import make_project

MODES = ("supervisord", "fallback")


@pytest.fixture(scope="session")
def projects(tmp_path_factory) -> dict[str, Path]:
    """mode → AUTO_INFER_SGLANG_PIXI_PROJECT_DIR: with supervisord in $PREFIX/bin, or with none anywhere."""
    assert CATALOG.exists(), f"{CATALOG} is missing"
    if shutil.which("supervisord", path=SYSTEM_PATH):
        pytest.fail(f"a supervisord on {SYSTEM_PATH}: the fallback mode cannot be tested here")

    def build(base: Path) -> None:
        make_project(base / "with-supervisor", supervisor=True)
        make_project(base / "plain", supervisor=False)

    base = built_once(tmp_path_factory, "e2e-projects", build)
    return {"supervisord": base / "with-supervisor", "fallback": base / "plain"}


ONE = """
[instances.x]
model_path = "<<model>>"
served_model_name = "model-x"
port = <<port_x>>
gpu_ids = [0]
env = { SGLANG_STANDIN_RECORD = "<<record_x>>"<<extra_env>> }
"""


def one(deploy: t.Callable[..., Deployment], mode: str, extra_env: str = "", **kwargs: t.Any) -> Deployment:
    """A deployment of the one instance `x` (`extra_env`: more `, NAME = "value"` pairs of its env)."""
    return deploy(ONE.replace("<<extra_env>>", extra_env), ["x"], mode=mode, **kwargs)


def toml_str(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def fill(text: str, fields: dict[str, str]) -> str:
    for key, value in fields.items():
        text = text.replace(f"<<{key}>>", value)
    assert "<<" not in text, text
    return text


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
    header: str = ""  # the config's text before the instances
    fields: dict[str, str] = dataclasses.field(default_factory=dict)  # what <<NAME>> stands for

    def recompile(self, instances: str) -> str:
        """Write the config again with other instances and compile it into the same DIR; compile's output."""
        self.config.write_text(self.header + "\n" + fill(instances, self.fields), encoding="utf-8")
        done = run_cli("compile", str(self.config), "-o", str(self.out))
        assert done.exit_code == 0, done.stdout + done.stderr
        return done.stdout

    @property
    def runner_path(self) -> Path:
        return self.out / "check-and-run-sglang.sh"

    def runner(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """check-and-run-sglang.sh ARGS…; the test fails if it has not finished after `timeout` seconds."""
        return run(
            ["bash", str(self.runner_path), *args],
            env=env or self.env,
            cwd=self.root,
            timeout=timeout,
            what=f"check-and-run-sglang.sh {' '.join(args)}",
            detail=self.all_logs,
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
        kill_all(self.leftovers())
        wait_for(lambda: not self.leftovers(), 10, "killed processes to go")


@pytest.fixture
def deploy(request, projects, tmp_path) -> t.Iterator[t.Callable[..., Deployment]]:
    """deploy(instances_toml, names, mode=..., master=..., env=...) → a compiled Deployment (not started).

    `instances_toml` may use <<port_NAME>>, <<record_NAME>> (a path for SGLANG_STANDIN_RECORD), <<root>> and
    <<model>> (a model directory with a config.json).
    """
    made: list[Deployment] = []
    run_dirs: list[Path] = []

    def make(
        instances: str,
        names: t.Sequence[str],
        *,
        mode: str,
        master: str = "",
        env: dict | None = None,
        project: Path | None = None,
        log_name: str = "logs",
        run_name: str = "run",
    ) -> Deployment:
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
        header = "\n".join(
            [
                "version = 1",
                'sglang_version = "0.5.10.post1"',  # what the default environment (the stand-in's) installs
                "[master]",
                f"pixi_project_dir = {toml_str(str(project or projects[mode]))}",
                f"log_dir = {toml_str(str(log_dir))}",
                f"runtime_dir = {toml_str(str(run_dir / run_name))}",
                "start_seconds = 1",
                "start_retries = 1",
                "stop_timeout = 5",
                "ready_timeout = 60",
                master,
            ]
        )
        text = header + "\n" + fill(instances, fields)
        config = tmp_path / "config.toml"
        config.write_text(text, encoding="utf-8")
        out = tmp_path / "out"
        done = run_cli("compile", str(config), "-o", str(out))
        assert done.exit_code == 0, done.stdout + done.stderr
        full_env = {
            "PATH": SYSTEM_PATH,
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "SGLANG_STANDIN_LOAD_SECONDS": "0.3",
            "SGLANG_STANDIN_DRAIN_SECONDS": "0.1",
            **(env or {}),
        }
        # the logs go to a private directory of the deployment below master.log_dir
        dep = Deployment(
            mode,
            tmp_path,
            run_dir / run_name,
            out,
            log_dir / "sglangc",
            config,
            full_env,
            ports,
            header=header,
            fields=fields,
        )
        made.append(dep)
        return dep

    yield make
    for dep in made:
        try:
            dep.runner("stop", timeout=60)
        except pytest.fail.Exception:
            pass  # what stop left is killed below
        dep.kill_all()
    for run_dir in run_dirs:
        shutil.rmtree(run_dir, ignore_errors=True)
