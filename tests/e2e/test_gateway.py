"""The gateway end to end: the real smg (PyPI `smg` 1.13.0) in front of stand-in SGLang servers, under real
supervisord and as plain background processes.

Two models plus one model with two replicas: requests reach an instance of their model (each stand-in logs the
requests it serves), `/v1/models` lists every model once, the client key is required, the control plane is
closed, a killed replica leaves its model served by the other, no key is on any command line, and `stop`
leaves nothing behind.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
from pathlib import Path

import pytest

from support import built_once, wait_for
from support.net import free_port_run, http
from support.procs import cmdline, live_pids
from support.standin import SMG, make_project

from .conftest import MODES, Deployment

KEY = "gw-key-Zq7'x\"y$1"  # quotes and a dollar: reaches smg unchanged, through the key file
GATEWAY = """
[gateway]
enable = true
host = "127.0.0.1"
port = <<port_gw>>
api_key_env = "GATEWAY_TEST_KEY"
server_args = { "prometheus-port" = <<port_metrics>> }

[instances.a]
model_path = "<<model>>"
served_model_name = "model-a"

[instances.b]
model_path = "<<model>>"
served_model_name = "model-b"
replicas = 2
gpu_ids = [[1], [2]]

[instances.c]
model_path = "<<model>>"
served_model_name = "model-c"
gpu_ids = [3]
"""
UNITS = ("a", "b-0", "b-1", "c")


@pytest.fixture(scope="session")
def gateway_projects(tmp_path_factory) -> dict[str, Path]:
    """mode → a project whose environment holds the stand-in and the real smg (with supervisord, or without)."""

    def build(base: Path) -> None:
        make_project(base / "with-supervisor", supervisor=True, gateway=True)
        make_project(base / "plain", supervisor=False, gateway=True)

    base = built_once(tmp_path_factory, "e2e-gateway-projects", build)
    return {"supervisord": base / "with-supervisor", "fallback": base / "plain"}


def chat(port: int, model: str, key: str | None = KEY, text: str = "hello"):
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return http(port, "/v1/chat/completions", body=body, key=key, timeout=20)


def served(dep: Deployment, name: str) -> int:
    """How many chat requests the stand-in of unit `name` has answered (it logs each one)."""
    return dep.log(name).count('"POST /v1/chat/completions HTTP/1.1" 200')


@pytest.mark.parametrize("mode", MODES)
def test_gateway(deploy, gateway_projects, mode):
    start = free_port_run(len(UNITS))
    dep = deploy(
        GATEWAY,
        ["gw", "metrics"],
        mode=mode,
        master=f"gpu_count = 4\nbase_port = {start}",
        project=gateway_projects[mode],
        env={"GATEWAY_TEST_KEY": KEY},
    )
    port = dep.ports["gw"]
    prefix = gateway_projects[mode] / ".pixi" / "envs" / "default"
    site = [str(p) for p in prefix.glob("lib/python*/site-packages")]
    installed = [d.version for d in importlib.metadata.distributions(name="smg", path=site)]
    assert [f"smg=={v}" for v in installed] == [SMG]
    assert f"smg=={importlib.metadata.version('smg')}" == SMG

    dep.run_ok("start")
    waited = dep.run_ok("wait", "--timeout", "90", timeout=120)
    assert "gateway: ready in " in waited.stdout and "(workers healthy: " in waited.stdout, waited.stdout

    # ready once smg has one healthy worker; it registers the others as it finds them
    def all_seen() -> str:
        status = dep.runner("status")
        assert status.returncode == 0, status.stdout + status.stderr
        line = next(x for x in status.stdout.splitlines() if x.startswith("gateway "))
        return line if "(4 of 4)" in line else ""

    line = wait_for(all_seen, 30, "smg to see all 4 workers healthy", interval=0.5)
    assert " ready " in line, line
    assert sorted(line.split("workers healthy: ")[1].split(" (")[0].split(", ")) == sorted(UNITS), line

    # every model once, each request served by an instance of its model
    models = http(port, "/v1/models", key=KEY)
    assert models.status == 200, models
    assert sorted(m["id"] for m in models.json()["data"]) == ["model-a", "model-b", "model-c"]
    for model in ("model-a", "model-b", "model-c"):
        for n in range(3):
            reply = chat(port, model, text=f"{model} {n}")
            assert reply.status == 200, reply
            assert reply.json()["model"] == model
            assert reply.json()["choices"][0]["message"]["content"] == f"{model} {n}"
    wait_for(lambda: served(dep, "a") == 3 and served(dep, "c") == 3, 5, "the stand-ins to log their requests")
    wait_for(lambda: served(dep, "b-0") + served(dep, "b-1") == 3, 5, "model-b's replicas to log 3 requests")

    # the client key is required, the control plane is closed (to clients without a key and to the client key)
    assert chat(port, "model-a", key=None).status == 401
    assert chat(port, "model-a", key="wrong").status == 401
    worker = {"url": "http://127.0.0.1:9"}
    assert http(port, "/workers", body=worker).status == 401
    assert http(port, "/workers", body=worker, key=KEY).status in (401, 403)
    assert http(port, "/workers").status == 401
    # metrics on loopback, on their own port
    assert http(dep.ports["metrics"], "/metrics").status == 200

    # no key on any command line (the gateway's included)
    for pid in live_pids():
        assert KEY.encode() not in b"\0".join(cmdline(pid)), (pid, cmdline(pid))
    key_file = dep.run_dir / "secrets" / "gateway.yaml"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    # a replica killed: its model is still served, through the other one
    pids = {u["name"]: u["pid"] for u in json.loads(dep.runner("status", "--format", "json").stdout)["instances"]}
    os.killpg(pids["b-0"], signal.SIGKILL)
    for n in range(6):
        reply = chat(port, "model-b", text=f"after {n}")
        assert reply.status == 200, reply
        assert reply.json()["model"] == "model-b"

    stopped = dep.run_ok("stop", timeout=120)
    if mode == "supervisord":
        order = [x for x in (dep.run_dir / "supervisord.log").read_text().splitlines() if "stopped: sglang-" in x]
        assert "sglang-gateway" in order[0], order  # the gateway first, then the workers
    else:
        assert stopped.stdout.index("gateway: stopping") < stopped.stdout.index("a: stopping"), stopped.stdout
    wait_for(
        lambda: not dep.leftovers(),
        10,
        "every process of the deployment to be gone",
        detail=lambda: str(dep.leftovers()),
    )
    assert not key_file.exists()


SMALL = """
[gateway]
enable = true
host = "127.0.0.1"
port = <<port_gw>>
server_args = { "prometheus-port" = <<port_metrics>> }

[instances.a]
model_path = "<<model>>"
served_model_name = "model-a"
gpu_ids = [0]

[instances.c]
model_path = "<<model>>"
served_model_name = "model-c"
gpu_ids = [1]
"""
GROWN = (
    SMALL
    + """
[instances.d]
model_path = "<<model>>"
served_model_name = "model-d"
gpu_ids = [2]
"""
)


def pids_of(dep: Deployment) -> dict[str, int]:
    return {u["name"]: u["pid"] for u in json.loads(dep.runner("status", "--format", "json").stdout)["instances"]}


@pytest.mark.parametrize("mode", MODES)
def test_reload_with_a_new_model_restarts_the_gateway_alone(deploy, gateway_projects, mode):
    """A recompile that adds a model: reload starts its instance and restarts the gateway (its worker list
    changed), leaves the other workers running (same pid), and the new model is served through the one port."""
    start = free_port_run(3)
    dep = deploy(
        SMALL,
        ["gw", "metrics"],
        mode=mode,
        master=f"gpu_count = 4\nbase_port = {start}",
        project=gateway_projects[mode],
    )
    port = dep.ports["gw"]
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "90", timeout=120)
    before = pids_of(dep)
    assert set(before) == {"a", "c", "gateway"} and all(before.values()), before

    said = dep.recompile(GROWN)
    assert "reload would start d (new), restart gateway (changed), leave a, c untouched" in said, said
    done = dep.run_ok("reload", timeout=120)
    assert "gateway: changed: restarting" in done.stdout and "d: new: starting" in done.stdout, done.stdout
    dep.run_ok("wait", "--timeout", "90", timeout=120)
    after = pids_of(dep)
    assert (after["a"], after["c"]) == (before["a"], before["c"]), "a worker was restarted"
    assert after["gateway"] != before["gateway"] and after["d"]

    def serves_d() -> bool:
        models = http(port, "/v1/models")
        return models.status == 200 and "model-d" in [m["id"] for m in models.json()["data"]]

    wait_for(serves_d, 30, "the gateway to list model-d", interval=0.5)
    for model in ("model-a", "model-c", "model-d"):
        reply = chat(port, model, key=None)
        assert reply.status == 200 and reply.json()["model"] == model, reply
    dep.run_ok("stop", timeout=120)
    wait_for(lambda: not dep.leftovers(), 10, "every process to be gone", detail=lambda: str(dep.leftovers()))
