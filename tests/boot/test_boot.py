"""The whole container boot, simulated end to end under a temporary root standing in for the container's paths.

compile a shipped example → `sglangc bundle --kind wheelhouse` with the SGLang stand-in, a torch stand-in,
supervisor and PyYAML → `entry-hook.sh` (sourced by a strict entrypoint) with both gates on → the installer
installs the bundle offline into $PREFIX → the runner starts supervisord from $PREFIX/bin → the instances answer
/v1/models and /v1/chat/completions → a second boot skips the install and starts again → stop leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import typing as t
from pathlib import Path

import pytest

import readme
from support import CATALOG, ROOT, SYSTEM_PATH, built_once, bundlekit, procs, unstamped, wait_for
from support.net import free_port_run, free_ports, http
from support.procs import kill_all, processes_with
from support.standin import standin

EXAMPLE = ROOT / "model-configs" / "sglang-glm-4.7-flash-tp8.toml"
GATEWAY_EXAMPLE = ROOT / "model-configs" / "sglang-two-models-gateway.toml"
KEY = "sk-boot-test-9f3a"


def _host_bundle(tmp_path_factory: pytest.TempPathFactory, gateway: bool) -> Path:
    """The host side, once per session: a wheelhouse bundle (and its .sha256) of a template pinning the stand-ins
    (and the real smg for the gateway), built by `sglangc bundle`. Each test installs its own copy."""

    def build(work: Path) -> None:
        wheels = work / "wheels"
        wheels.mkdir()
        standin.build_wheel(wheels, CATALOG)
        bundlekit.fake_torch_wheel(wheels, "2.9.1")
        extra = bundlekit.third_party_wheels(packages=bundlekit.GATEWAY) if gateway else []
        for wheel in bundlekit.third_party_wheels() + extra:
            shutil.copy(wheel, wheels)
        template = work / "template"
        template.mkdir()
        smg = "".join(f'{p.split("==")[0]} = "=={p.split("==")[1]}"\n' for p in bundlekit.GATEWAY) if gateway else ""
        (template / "pixi.toml").write_text(
            '[workspace]\nname = "boot-test"\nchannels = ["conda-forge"]\nplatforms = ["linux-64"]\n\n'
            '[dependencies]\npython = "3.11.*"\nsupervisor = "*"\npyyaml = "*"\n\n'
            '[pypi-dependencies]\nsglang = "==0.5.23"\ntorch = "==2.9.1"\n' + smg
        )
        run(
            [
                "sglangc",
                "bundle",
                "--kind",
                "wheelhouse",
                "--template",
                str(template),
                "--output",
                str(work / "sglang-offline-bundle.tar"),
                "--find-links",
                str(wheels),
                "--no-index",
                "--cache-dir",
                str(work / "cache"),
            ],
            timeout=300,
        )

    name = "boot-host-bundle-gateway" if gateway else "boot-host-bundle"
    return built_once(tmp_path_factory, name, build) / "sglang-offline-bundle.tar"


@pytest.fixture(scope="session")
def host_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _host_bundle(tmp_path_factory, gateway=False)


@pytest.fixture(scope="session")
def gateway_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _host_bundle(tmp_path_factory, gateway=True)


@pytest.fixture
def container(tmp_path: Path, host_bundle: Path):
    """A temporary root with the container's paths, a compiled example and the bundle mounted in its workspace."""
    ports = free_ports(2)

    def ports_of(text: str) -> str:
        return text.replace("port = 30000", f"port = {ports[0]}").replace("port = 30001", f"port = {ports[1]}")

    yield from _container(tmp_path, host_bundle, EXAMPLE, ports_of, ports)


@pytest.fixture
def gateway_container(tmp_path: Path, gateway_bundle: Path):
    """The same, for the example with the gateway: its port, its metrics port and the instances' first port free."""
    gateway, metrics = free_ports(2)
    start = free_port_run(3)

    def ports_of(text: str) -> str:
        text = text.replace("[master]\n", f"[master]\nbase_port = {start}\n", 1)
        return text.replace(
            "[gateway]\n", f"[gateway]\nport = {gateway}\nserver_args = {{ prometheus-port = {metrics} }}\n", 1
        )

    yield from _container(tmp_path, gateway_bundle, GATEWAY_EXAMPLE, ports_of, [gateway, metrics])


def _container(tmp_path: Path, bundle_built: Path, example: Path, ports_of: t.Callable[[str], str], ports: list[int]):
    root = tmp_path / "root"
    workspace = root / "hard/volume/workspace"
    workspace.mkdir(parents=True)
    runtime = Path(tempfile.mkdtemp(prefix="sgb-", dir="/tmp"))  # short: the supervisord socket lives here
    text = ports_of(example.read_text().replace('"/llm-models/', f'"{root}/llm-models/'))
    text = text.replace(
        "[master]\n", f'[master]\nruntime_dir = "{runtime}/run"\nlog_dir = "{root}/logs"\nstart_seconds = 2\n', 1
    )
    config = tmp_path / example.name
    config.write_text(text)
    models = {line.split('"')[1] for line in text.splitlines() if line.startswith("model_path")}
    for model in models:
        Path(model).mkdir(parents=True, exist_ok=True)
        (Path(model) / "config.json").write_text('{"architectures": ["Glm4MoeLiteForCausalLM"]}\n')

    app = root / "soft/app/sglang"
    run(["sglangc", "compile", str(config), "-o", str(app)])
    bundle = workspace / bundle_built.name
    for suffix in ("", ".sha256"):
        shutil.copyfile(f"{bundle_built}{suffix}", f"{bundle}{suffix}")
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
    kill_all(processes_with(str(root), str(runtime)))
    shutil.rmtree(runtime, ignore_errors=True)


def run(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 60, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """A command of the boot; the test fails if it has not finished after `timeout` seconds (or, with `ok`,
    if it exits non-zero)."""
    done = procs.run(argv, env=env, timeout=timeout, what=argv[-1] if argv[0] == "bash" else argv[0])
    if ok:
        assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done


def _boot(app: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The container entrypoint: strict bash that sources the hook, then goes on."""
    entry = (
        f"set -euo pipefail\nif [ -f {app}/entry-hook.sh ]; then . {app}/entry-hook.sh; fi\necho entrypoint-continues\n"
    )
    return run(["bash", "-c", entry], env=env, timeout=timeout)


def _chat(port: int, body: dict | None = None) -> tuple[int | None, dict]:
    reply = http(port, "/v1/chat/completions" if body else "/v1/models", body=body, key=KEY, timeout=10)
    return reply.status, (reply.json() if reply.status == 200 else {})


def _serving(app: Path, env: dict[str, str], ports: list[int]) -> None:
    run(["bash", str(app / "check-and-run-sglang.sh"), "wait", "--timeout", "90"], env=env, timeout=150)
    for port in ports:
        status, models = _chat(port)
        assert status == 200 and models["data"][0]["id"] == "glm-4.7-flash"
        status, reply = _chat(port, {"model": "glm-4.7-flash", "messages": [{"role": "user", "content": "hello"}]})
        assert status == 200 and reply["choices"][0]["message"]["content"]
    prefix = Path(env["AUTO_INFER_SGLANG_PIXI_PROJECT_DIR"]) / ".pixi/envs/default"
    programs = run(
        [str(prefix / "bin/supervisorctl"), "-c", str(app / "supervisord.conf"), "status"], timeout=30, ok=False
    )
    lines = [line.split() for line in programs.stdout.splitlines()]
    assert sorted((w[0], w[1]) for w in lines) == [
        ("sglang:sglang-flash-a", "RUNNING"),
        ("sglang:sglang-flash-b", "RUNNING"),
    ], programs.stdout


def _gone(root: Path, runtime: Path) -> None:
    wait_for(
        lambda: not processes_with(str(root), str(runtime)),
        10,
        "every process of the container to end",
        detail=lambda: f"left: {processes_with(str(root), str(runtime))}",
    )


def test_container_boots_installs_serves_restarts_and_stops(container) -> None:
    # Among the longest tests, by nature: a real offline install (venv + pip), then two boots of supervisord and
    # two servers each, every step waited for as the container would.
    app, env, ports, root, runtime = container

    first = _boot(app, env)
    assert first.stdout.rstrip().endswith("entrypoint-continues")
    prefix = Path(env["AUTO_INFER_SGLANG_PIXI_PROJECT_DIR"]) / ".pixi/envs/default"
    assert prefix.is_symlink() and (prefix / "bin/supervisord").exists() and (prefix / ".installed-from.json").exists()
    _serving(app, env, ports)

    # A container restart: every process is gone, the volumes stay. The second boot installs nothing.
    run(["bash", str(app / "check-and-run-sglang.sh"), "stop"], env=env, timeout=120)
    installed = os.readlink(prefix)
    second = _boot(app, env, timeout=60)  # nothing to install: well within the first boot's time
    assert "already installed" in second.stdout + second.stderr
    assert os.readlink(prefix) == installed
    _serving(app, env, ports)

    run(["bash", str(app / "check-and-run-sglang.sh"), "stop"], env=env, timeout=120)
    _gone(root, runtime)
    for artifact in app.iterdir():
        if artifact.is_file():
            assert KEY not in artifact.read_text(errors="replace")


def test_readme_manual_workflow(container) -> None:
    """README's "install and serve by hand" and "talking to the servers", command by command (readme.RUN_BY)."""
    app, env, ports, root, runtime = container
    project = env["AUTO_INFER_SGLANG_PIXI_PROJECT_DIR"]
    lines = readme.run_by(readme.MANUAL)
    curls = [line for line in lines if line.startswith("curl ")]
    *serve, stop = [line for line in lines if line not in curls]
    assert stop.endswith("check-and-run-sglang.sh stop")

    def shell(line: str) -> subprocess.CompletedProcess[str]:
        line = line.replace("/soft/app/sglang", str(app)).replace("/hard/volume/workspace/sglang-pixi-offline", project)
        line = line.replace("127.0.0.1:11982", f"127.0.0.1:{ports[0]}")
        return run(["bash", "-c", line], env=env, timeout=300)

    outputs = [shell(line).stdout for line in serve]
    assert "RUNNING" in outputs[-1]
    models, plain, tool, no_thinking = (json.loads(shell(line).stdout) for line in curls)
    assert models["data"][0]["id"] == "glm-4.7-flash"
    assert plain["choices"][0]["message"].get("reasoning_content")
    call = tool["choices"][0]["message"]["tool_calls"][0]["function"]
    assert call["name"] == "get_weather" and isinstance(json.loads(call["arguments"]), dict)
    assert not no_thinking["choices"][0]["message"].get("reasoning_content")
    shell(stop)
    _gone(root, runtime)


def _pid(app: Path, env: dict[str, str], program: str) -> int:
    prefix = Path(env["AUTO_INFER_SGLANG_PIXI_PROJECT_DIR"]) / ".pixi/envs/default"
    done = run([str(prefix / "bin/supervisorctl"), "-c", str(app / "supervisord.conf"), "pid", f"sglang:{program}"])
    return int(done.stdout)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_reload_of_a_recompiled_dir_then_a_second_boot_reuses_the_caches(container, tmp_path) -> None:
    """Recompile the running container's DIR with one instance changed, one added and one removed → reload →
    only those three are touched; then a container restart finds the first boot's kernel caches again."""
    app, env, _ports, root, runtime = container
    config = tmp_path / EXAMPLE.name
    extra = free_ports(2)
    model = f"{root}/llm-models/GLM-4.7-Flash"
    small = 'model_path = "{model}"\nport = {port}\ngpu_ids = [{gpu}]\napi_key_env = "SGLANG_API_KEY"\n'
    text = config.read_text().replace("gpu_count = 8", "gpu_count = 10")
    config.write_text(text + "\n[instances.old]\n" + small.format(model=model, port=extra[0], gpu=8))
    run(["sglangc", "compile", str(config), "-o", str(app)])
    _boot(app, env)
    run(["bash", str(app / "check-and-run-sglang.sh"), "wait", "--timeout", "90"], env=env, timeout=150)
    before = {p: _pid(app, env, f"sglang-{p}") for p in ("flash-a", "flash-b", "old")}

    changed = text.replace("mem_fraction_static = 0.8\n", "mem_fraction_static = 0.75\n", 2)
    changed = changed.replace("mem_fraction_static = 0.75\n", "mem_fraction_static = 0.8\n", 1)  # flash-a as it was
    config.write_text(changed + "\n[instances.new]\n" + small.format(model=model, port=extra[1], gpu=9))
    said = run(["sglangc", "compile", str(config), "-o", str(app)]).stdout
    assert "reload would start new (new), restart flash-b (changed), stop old (removed), leave flash-a" in said
    run(["bash", str(app / "check-and-run-sglang.sh"), "reload"], env=env, timeout=120)
    run(["bash", str(app / "check-and-run-sglang.sh"), "wait", "--timeout", "90"], env=env, timeout=150)
    assert _pid(app, env, "sglang-flash-a") == before["flash-a"], "the unchanged instance was restarted"
    assert _pid(app, env, "sglang-flash-b") != before["flash-b"]
    assert not Path(f"/proc/{before['old']}").exists(), "the removed instance still runs"
    assert http(extra[1], "/v1/models", key=KEY).status == 200, "the added instance does not serve"
    assert http(extra[0], "/v1/models", key=KEY, timeout=2).status is None, "the removed one still answers"

    # Kernels SGLang compiled at the first boot, in its cache directory on the workspace volume.
    cache = Path(_environ(_pid(app, env, "sglang-flash-a"))["SGLANG_CACHE_DIR"])
    assert cache.is_relative_to(root / "hard/volume/workspace") and cache.is_dir()
    (cache / "jit").mkdir(exist_ok=True)
    (cache / "jit" / "kernel.so").write_bytes(b"compiled at the first boot")

    # A container restart: processes and the runtime directory are gone, the volumes stay.
    run(["bash", str(app / "check-and-run-sglang.sh"), "stop"], env=env, timeout=120)
    _gone(root, runtime)
    shutil.rmtree(runtime / "run")
    second = _boot(app, env, timeout=120)
    assert "already installed" in second.stdout + second.stderr
    run(["bash", str(app / "check-and-run-sglang.sh"), "wait", "--timeout", "90"], env=env, timeout=150)
    seen = _environ(_pid(app, env, "sglang-flash-a"))
    assert Path(seen["SGLANG_CACHE_DIR"]) == cache and seen["SGLANG_JIT_CACHE_DIR"] == str(cache / "jit")
    assert (cache / "jit" / "kernel.so").read_bytes() == b"compiled at the first boot"


def test_container_boots_with_the_gateway(gateway_container) -> None:
    """The gateway example through the same boot: the bundle brings the real smg, the runner starts it with the
    three instances, one port serves both models, and stop leaves nothing."""
    app, env, (port, metrics), root, runtime = gateway_container
    first = _boot(app, env)
    assert first.stdout.rstrip().endswith("entrypoint-continues")
    run(["bash", str(app / "check-and-run-sglang.sh"), "wait", "--timeout", "120"], env=env, timeout=180)
    models = http(port, "/v1/models", key=KEY, timeout=10)
    assert models.status == 200 and sorted(m["id"] for m in models.json()["data"]) == ["glm-4.7-flash", "qwen3-32b"]
    for model in ("glm-4.7-flash", "qwen3-32b"):
        status, reply = _chat(port, {"model": model, "messages": [{"role": "user", "content": "hello"}]})
        assert status == 200 and reply["model"] == model and reply["choices"][0]["message"]["content"] == "hello"
    body = {"model": "qwen3-32b", "messages": [{"role": "user", "content": "hello"}]}
    assert http(port, "/v1/chat/completions", body=body, timeout=10).status == 401  # the key is required
    assert http(metrics, "/metrics", timeout=10).status == 200
    prefix = Path(env["AUTO_INFER_SGLANG_PIXI_PROJECT_DIR"]) / ".pixi/envs/default"
    programs = run(
        [str(prefix / "bin/supervisorctl"), "-c", str(app / "supervisord.conf"), "status"], timeout=30, ok=False
    )
    assert sorted((w[0], w[1]) for w in (line.split() for line in programs.stdout.splitlines())) == [
        ("sglang:sglang-flash-0", "RUNNING"),
        ("sglang:sglang-flash-1", "RUNNING"),
        ("sglang:sglang-gateway", "RUNNING"),
        ("sglang:sglang-qwen", "RUNNING"),
    ], programs.stdout
    run(["bash", str(app / "check-and-run-sglang.sh"), "stop"], env=env, timeout=120)
    _gone(root, runtime)


@pytest.fixture(scope="session")
def host_bundle_with_hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheelhouse bundle like `host_bundle`, with huggingface_hub (download-models.sh's client) in it too."""

    def build(work: Path) -> None:
        wheels = work / "wheels"
        wheels.mkdir()
        standin.build_wheel(wheels, CATALOG)
        bundlekit.fake_torch_wheel(wheels, "2.9.1")
        for wheel in bundlekit.third_party_wheels(extra=("huggingface_hub",)):
            shutil.copy(wheel, wheels)
        template = work / "template"
        template.mkdir()
        (template / "pixi.toml").write_text(
            '[workspace]\nname = "boot-test"\nchannels = ["conda-forge"]\nplatforms = ["linux-64"]\n\n'
            '[dependencies]\npython = "3.11.*"\nsupervisor = "*"\npyyaml = "*"\n\n'
            '[pypi-dependencies]\nsglang = "==0.5.23"\ntorch = "==2.9.1"\nhuggingface-hub = "*"\n'
        )
        bundle = work / "sglang-offline-bundle.tar"
        run(
            [
                *("sglangc", "bundle", "--kind", "wheelhouse", "--template", str(template), "--output", str(bundle)),
                *("--find-links", str(wheels), "--no-index", "--cache-dir", str(work / "cache")),
            ],
            timeout=300,
        )

    return built_once(tmp_path_factory, "boot-host-bundle-hub", build) / "sglang-offline-bundle.tar"


def test_boot_downloads_the_model_then_serves_it(tmp_path: Path, host_bundle_with_hub: Path) -> None:
    """AUTO_INFER_SGLANG_DOWNLOAD_ON_BOOT: the entry hook installs the bundle, runs download-models.sh with the
    environment's own huggingface_hub against the stand-in hub, then starts the server on the downloaded model
    (with HF_HUB_OFFLINE=1). A second boot fetches nothing."""
    from support.hub import Hub

    hub = Hub(tmp_path / "hub")
    root = tmp_path / "root"
    workspace = root / "hard/volume/workspace"
    workspace.mkdir(parents=True)
    runtime = Path(tempfile.mkdtemp(prefix="sgd-", dir="/tmp"))
    port = free_ports(1)[0]
    record = tmp_path / "server.json"
    config = tmp_path / "download.toml"
    config.write_text(
        f'version = 1\n[master]\nruntime_dir = "{runtime}/run"\nlog_dir = "{root}/logs"\n'
        f'models_dir = "{workspace}/llm-models"\nstart_seconds = 2\n'
        f'[instances.tiny]\ngpu_ids = [0]\nport = {port}\nserved_model_name = "tiny"\n'
        '[instances.tiny.download]\nrepo = "org/tiny"\n'
    )
    app = root / "soft/app/sglang"
    run(["sglangc", "compile", str(config), "-o", str(app)])
    bundle = workspace / host_bundle_with_hub.name
    for suffix in ("", ".sha256"):
        shutil.copyfile(f"{host_bundle_with_hub}{suffix}", f"{bundle}{suffix}")
    env = {
        "PATH": SYSTEM_PATH,
        "HOME": str(tmp_path),
        "AUTO_INFER_SGLANG_BUNDLE_ON_BOOT": "1",
        "AUTO_INFER_SGLANG_DOWNLOAD_ON_BOOT": "1",
        "AUTO_INFER_SGLANG_ON_BOOT": "1",
        "AUTO_INFER_SGLANG_BUNDLE_PATH": str(bundle),
        "AUTO_INFER_SGLANG_PIXI_PROJECT_DIR": str(workspace / "sglang-pixi-offline"),
        "AUTO_INFER_SGLANG_PYTHON": shutil.which("python3", path=SYSTEM_PATH) or "python3",
        "AUTO_INFER_SGLANG_VERIFY_CUDA": "0",
        "HF_ENDPOINT": f"http://127.0.0.1:{hub.port}",
        "HF_HOME": str(tmp_path / "hf-home"),
        "SGLANG_STANDIN_LOAD_SECONDS": "1",
        "SGLANG_STANDIN_RECORD": str(record),
    }
    try:
        first = _boot(app, env)
        assert first.stdout.rstrip().endswith("entrypoint-continues")
        steps = [line for line in unstamped(first.stdout).splitlines() if line.startswith("sglang-entry-hook:")]
        assert steps.index("sglang-entry-hook: install done") < steps.index("sglang-entry-hook: models complete")
        assert steps.index("sglang-entry-hook: models complete") < steps.index("sglang-entry-hook: started")
        model = workspace / "llm-models/org/tiny"
        assert (model / "model-00002-of-00002.safetensors").read_bytes() == (
            hub.repo / "model-00002-of-00002.safetensors"
        ).read_bytes()
        run(["bash", str(app / "check-and-run-sglang.sh"), "wait", "--timeout", "90"], env=env, timeout=150)
        reply = http(port, "/v1/models", timeout=10)
        assert reply.status == 200 and reply.json()["data"][0]["id"] == "tiny"
        served = json.loads(record.read_text())
        assert served["args"]["model_path"] == str(model) and served["env"]["HF_HUB_OFFLINE"] == "1"

        run(["bash", str(app / "check-and-run-sglang.sh"), "stop"], env=env, timeout=120)
        fetched = len([r for r in hub.requests() if "/resolve/" in r])
        second = _boot(app, env, timeout=120)
        assert "sglang-entry-hook: models complete" in second.stdout
        assert len([r for r in hub.requests() if "/resolve/" in r]) == fetched  # nothing fetched again
    finally:
        subprocess.run(
            ["bash", str(app / "check-and-run-sglang.sh"), "stop"], env=env, capture_output=True, timeout=120
        )
        kill_all(processes_with(str(root), str(runtime)))
        shutil.rmtree(runtime, ignore_errors=True)
        hub.stop()
