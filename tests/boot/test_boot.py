"""The whole container boot, simulated end to end under a temporary root standing in for the container's paths.

compile a shipped example → `sglangc bundle --kind wheelhouse` with the SGLang stand-in, a torch stand-in,
supervisor and PyYAML → `entry-hook.sh` (sourced by a strict entrypoint) with both gates on → the installer
installs the bundle offline into $PREFIX → the runner starts supervisord from $PREFIX/bin → the instances answer
/v1/models and /v1/chat/completions → a second boot skips the install and starts again → stop leaves nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "model-configs" / "sglang-glm-4.7-flash-tp8.toml"
CATALOG = ROOT / "compiler" / "catalogs" / "sglang-0.5.23.json"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEY = "sk-boot-test-9f3a"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


standin = _load("sglang_standin_build", ROOT / "tests/fakes/sglang_standin/build.py")
bundlekit = _load("bundlekit", ROOT / "tests/install/bundlekit.py")


def _free_ports(count: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _http(port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


def _processes_of(marker: str) -> list[int]:
    """Live processes whose command line or environment mentions `marker` (the test's private paths)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
            text = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if state not in ("Z", "X") and marker.encode() in text:
            found.append(int(proc.name))
    return found


@pytest.fixture
def container(tmp_path: Path):
    """A temporary root with the container's paths, a compiled example and a bundle built on the 'host'."""
    root = tmp_path / "root"
    workspace = root / "hard/volume/workspace"
    workspace.mkdir(parents=True)
    runtime = Path(tempfile.mkdtemp(prefix="sgb-", dir="/tmp"))  # short: the supervisord socket lives here
    ports = _free_ports(2)
    text = EXAMPLE.read_text().replace('"/llm-models/', f'"{root}/llm-models/')
    text = text.replace("port = 30000", f"port = {ports[0]}").replace("port = 30001", f"port = {ports[1]}")
    text = text.replace("[master]\n", f'[master]\nruntime_dir = "{runtime}/run"\nlog_dir = "{root}/logs"\nstart_seconds = 2\n', 1)
    config = tmp_path / EXAMPLE.name
    config.write_text(text)
    models = {line.split('"')[1] for line in text.splitlines() if line.startswith("model_path")}
    for model in models:
        Path(model).mkdir(parents=True, exist_ok=True)
        (Path(model) / "config.json").write_text('{"architectures": ["Glm4MoeLiteForCausalLM"]}\n')

    app = root / "soft/app/sglang"
    subprocess.run(["sglangc", "compile", str(config), "-o", str(app)], check=True, capture_output=True)

    # The host side: a wheelhouse bundle of a template pinning the stand-ins, built by `sglangc bundle`.
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    standin.build_wheel(wheels, CATALOG)
    bundlekit.fake_torch_wheel(wheels, "2.9.1")
    for wheel in bundlekit.third_party_wheels():
        shutil.copy(wheel, wheels)
    template = tmp_path / "template"
    template.mkdir()
    (template / "pixi.toml").write_text(
        '[workspace]\nname = "boot-test"\nchannels = ["conda-forge"]\nplatforms = ["linux-64"]\n\n'
        '[dependencies]\npython = "3.11.*"\nsupervisor = "*"\npyyaml = "*"\n\n'
        '[pypi-dependencies]\nsglang = "==0.5.23"\ntorch = "==2.9.1"\n')
    bundle = workspace / "sglang-offline-bundle.tar"
    subprocess.run(["sglangc", "bundle", "--kind", "wheelhouse", "--template", str(template), "--output", str(bundle),
                    "--find-links", str(wheels), "--no-index", "--cache-dir", str(tmp_path / "cache")],
                   check=True, capture_output=True)
    env = {
        "PATH": SYSTEM_PATH,  # no supervisord here: it must come from the installed $PREFIX/bin
        "HOME": str(tmp_path),
        "AUTO_INFER_SGLANG_BUNDLE_ON_BOOT": "1",
        "AUTO_INFER_SGLANG_ON_BOOT": "1",
        "AUTO_INFER_SGLANG_BUNDLE_PATH": str(bundle),
        "AUTO_INFER_SGLANG_PIXI_PROJECT_DIR": str(workspace / "sglang-pixi-offline"),
        "AUTO_INFER_SGLANG_PYTHON": shutil.which("python3", path=SYSTEM_PATH) or "python3",
        "AUTO_INFER_SGLANG_VERIFY_CUDA": "0",  # no GPU here; the rest of the verify step runs
        "SGLANG_API_KEY": KEY,
        "SGLANG_STANDIN_LOAD_SECONDS": "1",
    }
    yield app, env, ports, root, runtime
    subprocess.run(["bash", str(app / "check-and-run-sglang.sh"), "stop"], env=env, capture_output=True, timeout=120)
    for pid in _processes_of(str(root)) + _processes_of(str(runtime)):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    shutil.rmtree(runtime, ignore_errors=True)


def _boot(app: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The container entrypoint: strict bash that sources the hook, then goes on."""
    entry = f"set -euo pipefail\nif [ -f {app}/entry-hook.sh ]; then . {app}/entry-hook.sh; fi\necho entrypoint-continues\n"
    return subprocess.run(["bash", "-c", entry], env=env, capture_output=True, text=True, timeout=300)


def _serving(app: Path, env: dict[str, str], ports: list[int]) -> None:
    done = subprocess.run(["bash", str(app / "check-and-run-sglang.sh"), "wait", "--timeout", "90"], env=env,
                          capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    for port in ports:
        status, models = _http(port, "/v1/models")
        assert status == 200 and models["data"][0]["id"] == "glm-4.7-flash"
        status, reply = _http(port, "/v1/chat/completions",
                              {"model": "glm-4.7-flash", "messages": [{"role": "user", "content": "hello"}]})
        assert status == 200 and reply["choices"][0]["message"]["content"]
    prefix = Path(env["AUTO_INFER_SGLANG_PIXI_PROJECT_DIR"]) / ".pixi/envs/default"
    status = subprocess.run([str(prefix / "bin/supervisorctl"), "-c", str(app / "supervisord.conf"), "status"],
                            capture_output=True, text=True, timeout=30)
    lines = [line.split() for line in status.stdout.splitlines()]
    assert sorted((w[0], w[1]) for w in lines) == [("sglang:sglang-flash-a", "RUNNING"),
                                                    ("sglang:sglang-flash-b", "RUNNING")], status.stdout


def test_container_boots_installs_serves_restarts_and_stops(container) -> None:
    app, env, ports, root, runtime = container

    first = _boot(app, env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.rstrip().endswith("entrypoint-continues")
    prefix = Path(env["AUTO_INFER_SGLANG_PIXI_PROJECT_DIR"]) / ".pixi/envs/default"
    assert prefix.is_symlink() and (prefix / "bin/supervisord").exists() and (prefix / ".installed-from.json").exists()
    _serving(app, env, ports)

    # A container restart: every process is gone, the volumes stay. The second boot installs nothing.
    subprocess.run(["bash", str(app / "check-and-run-sglang.sh"), "stop"], env=env, check=True, capture_output=True,
                   timeout=120)
    installed = os.readlink(prefix)
    start = time.monotonic()
    second = _boot(app, env)
    assert second.returncode == 0, second.stderr
    assert "already installed" in second.stdout + second.stderr
    assert os.readlink(prefix) == installed
    _serving(app, env, ports)
    assert time.monotonic() - start < 120

    done = subprocess.run(["bash", str(app / "check-and-run-sglang.sh"), "stop"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 10
    while (_processes_of(str(root)) or _processes_of(str(runtime))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_of(str(root)) == [] and _processes_of(str(runtime)) == []
    for artifact in app.iterdir():
        if artifact.is_file():
            assert KEY not in artifact.read_text(errors="replace")


def test_readme_manual_workflow(container) -> None:
    """README's "install and serve by hand" and "talking to the servers", command by command."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from readme import section

    app, env, ports, root, runtime = container
    project = env["AUTO_INFER_SGLANG_PIXI_PROJECT_DIR"]
    manual = [line for line in section("Workflow 2") if not line.startswith("docker ")]
    *serve, stop = manual
    assert stop.endswith("check-and-run-sglang.sh stop")

    def run(line: str) -> subprocess.CompletedProcess[str]:
        line = line.replace("/soft/app/sglang", str(app)).replace("/hard/volume/workspace/sglang-pixi-offline", project)
        line = line.replace("127.0.0.1:11982", f"127.0.0.1:{ports[0]}")
        done = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        return done

    outputs = [run(line).stdout for line in serve]
    assert "RUNNING" in outputs[-1]
    models, plain, tool, no_thinking = (json.loads(run(line).stdout) for line in section("Talking to the servers"))
    assert models["data"][0]["id"] == "glm-4.7-flash"
    assert plain["choices"][0]["message"].get("reasoning_content")
    call = tool["choices"][0]["message"]["tool_calls"][0]["function"]
    assert call["name"] == "get_weather" and isinstance(json.loads(call["arguments"]), dict)
    assert not no_thinking["choices"][0]["message"].get("reasoning_content")
    run(stop)
    assert _processes_of(str(root)) == []
