"""The SGLang stand-in (tests/fakes/sglang_standin) behaves like SGLang where a launcher can see it.

Real processes on loopback; every wait is bounded.  Uses the shipped flag catalog of
SGLang 0.5.23 when it exists, else a small catalog written here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import CATALOG, built_once, wait_for
from support.net import free_port, http
from support.procs import alive, group_members
from support.standin import standin


def _option(flags, dest, kind="value", type="str", choices=None, default=None, required=False):
    return {
        "flags": flags,
        "dest": dest,
        "kind": kind,
        "type": type,
        "choices": choices,
        "nargs": 0 if kind == "flag" else None,
        "default": default,
        "required": required,
    }


SMALL_CATALOG = {
    "options": [
        _option(["-h", "--help"], "help", "flag", None, default="==SUPPRESS=="),
        _option(["--model-path", "--model"], "model_path", required=True),
        _option(["--served-model-name"], "served_model_name"),
        _option(["--host"], "host", default="127.0.0.1"),
        _option(["--port"], "port", type="int", default=30000),
        _option(["--tp-size", "--tensor-parallel-size"], "tp_size", type="int", default=1),
        _option(["--context-length"], "context_length", type="human_int"),
        _option(["--mem-fraction-static"], "mem_fraction_static", type="float"),
        _option(["--reasoning-parser"], "reasoning_parser", choices=["deepseek-r1", "glm45", "qwen3"]),
        _option(["--tool-call-parser"], "tool_call_parser", choices=["glm45", "glm47", "qwen"]),
        _option(["--trust-remote-code"], "trust_remote_code", "flag", None, default=False),
        _option(["--enable-metrics"], "enable_metrics", "flag", None, default=False),
        _option(["--api-key"], "api_key"),
        _option(["--config"], "config"),
    ]
}

MODEL = "/llm-models/GLM-4.7"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="session")
def python(tmp_path_factory) -> Path:
    def build(base: Path) -> None:
        catalog = CATALOG
        if not catalog.exists():
            catalog = base / "sglang-0.5.23.json"
            catalog.write_text(json.dumps(SMALL_CATALOG))
        standin.make_prefix(base / "env", catalog)

    return built_once(tmp_path_factory, "standin-prefix", build) / "env" / "bin" / "python"


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path
    record_path: Path

    def record(self) -> dict:
        return json.loads(
            wait_for(lambda: self.record_path.read_text() if self.record_path.exists() else "", 15, "the record file")
        )

    def wait_ready(self) -> list[int | None]:
        """Poll /ready until 200; returns every status seen on the way."""
        seen: list[int | None] = []

        def ready():
            assert self.proc.poll() is None, self.log.read_text()
            seen.append(http(self.port, "/ready")[0])
            return seen[-1] == 200

        wait_for(ready, 20, "/ready to answer 200")
        return seen

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def launch(python, tmp_path):
    started: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Server:
        port, n = free_port(), len(started)
        log, record = tmp_path / f"server-{n}.log", tmp_path / f"record-{n}.json"
        environment = {
            **os.environ,
            "SGLANG_STANDIN_RECORD": str(record),
            "SGLANG_STANDIN_LOAD_SECONDS": "0.2",
            **(env or {}),
        }
        argv = [str(python), "-m", "sglang.launch_server", "--host", "127.0.0.1", "--port", str(port), *args]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path
            )
        server = Server(proc, port, log, record)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None or group_members(server.proc.pid):
            try:
                os.killpg(server.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        server.proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-path", "m", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--model-path", "m", "--tp-size", "two"], "argument --tp-size/--tensor-parallel-size: invalid int value"),
        (["--model-path", "m", "--reasoning-parser", "glm47"], "argument --reasoning-parser: invalid choice"),
        (["--port", "30000"], "the following arguments are required: --model-path"),
    ],
)
def test_bad_arguments_exit_2_like_sglang(python, args, message):
    done = subprocess.run([python, "-m", "sglang.launch_server", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "sglang serve: error: " + message in done.stderr


def test_start_serve_and_graceful_stop(launch):
    odd = "a b\t'\"$HOME `x` \\ é ☃ --flag=;#%"
    args = [
        "--model-path",
        MODEL,
        "--served-model-name",
        "glm-4.7",
        "--tp",
        "2",
        "--context-length",
        "128k",
        "--reasoning-parser",
        "glm45",
        "--tool-call-parser",
        "glm47",
        "--trust-remote-code",
    ]
    server = launch(
        *args,
        env={
            "SGLANG_STANDIN_LOAD_SECONDS": "1.5",
            "SGLANG_STANDIN_WARMUP_SECONDS": "1",
            "SGLANG_STANDIN_DRAIN_SECONDS": "1",
            "STANDIN_PROBE": odd,
        },
    )
    record = server.record()
    with pytest.raises(ConnectionRefusedError):  # still "loading": the port is not bound yet
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()

    assert record["argv"] == ["--host", "127.0.0.1", "--port", str(server.port), *args]
    assert record["env"]["STANDIN_PROBE"] == odd
    assert record["pid"] == record["pgid"] == server.proc.pid
    assert record["args"]["tp_size"] == 2 and record["args"]["context_length"] == 128000
    assert record["args"]["trust_remote_code"] is True
    markers = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in record["children"]]
    assert [b"sglang-standin-scheduler" in m for m in markers] == [True, False]
    assert [b"sglang-standin-detokenizer" in m for m in markers] == [False, True]
    assert set(group_members(server.proc.pid)) == {server.proc.pid, *record["children"]}

    assert 503 in server.wait_ready()  # warm-up: bound, not ready yet
    assert http(server.port, "/health")[0] == 200
    assert "The server is fired up and ready to roll!" in server.output()
    assert "server_args=ServerArgs(" in server.output()

    reply = http(server.port, "/v1/models")
    assert reply.status == 200
    assert reply.json()["data"][0] | {"created": 0} == {
        "id": "glm-4.7",
        "object": "model",
        "root": MODEL,
        "created": 0,
        "owned_by": "sglang",
        "max_model_len": 128000,
    }
    info = http(server.port, "/model_info").json()
    assert (info["model_path"], info["reasoning_parser"], info["tool_call_parser"]) == (MODEL, "glm45", "glm47")

    chat = {
        "model": "glm-4.7",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is the weather?"}],
    }
    status, body = http(server.port, "/v1/chat/completions", body={**chat, "tools": TOOLS})
    assert status == 200 and json.loads(body)["model"] == "glm-4.7"
    message = json.loads(body)["choices"][0]["message"]
    assert message["content"] == "What is the weather?"
    assert message["reasoning_content"]
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    no_thinking = {**chat, "chat_template_kwargs": {"enable_thinking": False}}
    message = http(server.port, "/v1/chat/completions", body=no_thinking).json()["choices"][0]["message"]
    assert message["reasoning_content"] is None and message["tool_calls"] is None

    os.kill(server.proc.pid, signal.SIGTERM)
    wait_for(lambda: http(server.port, "/health")[0] == 503, 5, "/health 503 while draining")
    assert server.proc.wait(timeout=15) == 0
    wait_for(lambda: not group_members(server.proc.pid), 5, "an empty process group")


@pytest.mark.parametrize("via", ["cli", "config"])
def test_api_key_guards_all_but_probes(launch, tmp_path, via):
    key = "s3cr3t k#y 'x' é"
    if via == "cli":
        args = ["--model-path", MODEL, "--api-key", key]
    else:
        config = tmp_path / "secret.yaml"
        quoted = key.replace("'", "''")
        config.write_text(f"api-key: '{quoted}'\nserved-model-name: from-yaml\ntrust-remote-code: true\n", "utf-8")
        args = ["--served-model-name", "from-cli", "--config", str(config), "--model-path", MODEL]
    server = launch(*args)
    server.wait_ready()

    for probe in ("/health", "/health_generate", "/ready"):
        assert http(server.port, probe)[0] == 200
    for path in ("/v1/models", "/model_info", "/no-such-path"):
        assert http(server.port, path)[0] == 401
        assert http(server.port, path, key="wrong")[0] == 401
    assert http(server.port, "/v1/chat/completions", body={"messages": [{"role": "user", "content": "hi"}]})[0] == 401
    reply = http(server.port, "/v1/models", key=key)
    assert reply.status == 200
    assert reply.json()["data"][0]["id"] == (MODEL if via == "cli" else "from-cli")  # the command line wins
    assert f"api_key={key!r}" in server.output()  # SGLang logs its arguments, key included
    if via == "config":
        assert server.record()["args"]["trust_remote_code"] is True


def test_sigterm_while_loading_kills_at_once(launch):
    server = launch("--model-path", MODEL, env={"SGLANG_STANDIN_LOAD_SECONDS": "60"})
    children = server.record()["children"]
    wait_for(
        lambda: all(b"sglang-standin" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children),
        10,
        "the children to be running",
    )
    os.kill(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(timeout=5) == -signal.SIGTERM
    wait_for(lambda: not group_members(server.proc.pid), 2, "the children to die (PDEATHSIG)")


def test_sigkill_of_the_server_kills_its_children(launch):
    server = launch("--model-path", MODEL)
    server.wait_ready()
    children = server.record()["children"]
    assert all(alive(pid) for pid in children)
    os.kill(server.proc.pid, signal.SIGKILL)
    assert server.proc.wait(timeout=5) == -signal.SIGKILL
    wait_for(lambda: not any(alive(pid) for pid in children), 2, "the children to die (PDEATHSIG)")
    assert not group_members(server.proc.pid)


def test_crash_after_ready_kills_the_tree(launch):
    server = launch("--model-path", MODEL, env={"SGLANG_STANDIN_CRASH_AFTER": "0.5"})
    server.wait_ready()
    assert server.proc.wait(timeout=10) == -signal.SIGKILL
    wait_for(lambda: not group_members(server.proc.pid), 2, "an empty process group")
    assert "Scheduler hit an exception" in server.output()


def test_crash_file_gates_the_crash(launch, tmp_path):
    gate = tmp_path / "crash"
    gate.touch()
    env = {"SGLANG_STANDIN_CRASH_AT_START": "1", "SGLANG_STANDIN_CRASH_FILE": str(gate)}
    crashing = launch("--model-path", MODEL, env=env)
    assert crashing.proc.wait(timeout=15) == 1
    assert "SGLANG_STANDIN_CRASH_AT_START" in crashing.output()
    assert not crashing.record_path.exists()  # it died before starting anything

    gate.unlink()
    healed = launch("--model-path", MODEL, env=env)
    healed.wait_ready()
    os.kill(healed.proc.pid, signal.SIGTERM)
    assert healed.proc.wait(timeout=10) == 0
