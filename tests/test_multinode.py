"""Instances over several machines, bash route: check, plan and compile of every node's part, the per-node
launch scripts (rendezvous address from a variable, readiness of ranks > 0 being node 0's), and a one-machine
config through the same commands."""

from __future__ import annotations

import http.server
import json
import shlex
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from support import ROOT, SYSTEM_PATH
from support.cli import run_cli
from support.net import free_port
from support.procs import run

TWO = ROOT / "tests" / "cases" / "valid" / "multi-node-two" / "config.toml"
ONE = ROOT / "tests" / "cases" / "valid" / "minimal" / "config.toml"
ENV = ROOT / "tests" / "cases" / "valid" / "multi-node-env" / "config.toml"


def _compile(config: Path, out: Path, *args: str) -> None:
    done = run_cli("compile", str(config), "-o", str(out), *args)
    assert done.exit_code == 0, done.stderr


def _dry_run(out: Path, name: str, env: dict[str, str] | None = None) -> list[str]:
    done = run([out / f"launch-{name}.sh", "--dry-run"], timeout=30, env={"PATH": SYSTEM_PATH, **(env or {})})
    assert done.returncode == 0, done.stderr
    words = shlex.split(done.stdout.splitlines()[-1])
    assert words[1:3] == ["-m", "sglang.launch_server"]
    return words[3:]


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("config", [TWO, ONE], ids=["two-node", "one-node"])
def test_check_plan_and_both_targets(config: Path, tmp_path: Path) -> None:
    assert run_cli("check", str(config)).exit_code == 0
    text = run_cli("plan", str(config))
    assert text.exit_code == 0, text.stderr
    plan = json.loads(run_cli("plan", "--format", "json", str(config)).stdout)
    assert plan["node_rank"] == 0
    for inst in plan["instances"]:
        assert [n["node_rank"] for n in inst["nodes"]] == list(range(inst["nnodes"]))
        assert inst["nodes"][0]["argv"] == inst["argv"]
    _compile(config, tmp_path / "bash")
    _compile(config, tmp_path / "k8s", "--target", "k8s-lws")
    k8s = sorted(p.name for p in (tmp_path / "k8s" / "k8s").iterdir())
    assert k8s == sorted(f"{i['name']}.yaml" for i in plan["instances"] if i["enabled"])
    assert not list((tmp_path / "k8s").glob("*.sh"))  # the k8s target writes no bash


def test_plan_shows_every_nodes_part() -> None:
    plan = json.loads(run_cli("plan", "--format", "json", str(TWO)).stdout)
    big = next(i for i in plan["instances"] if i["name"] == "big")
    assert big["nnodes"] == 2
    for k, node in enumerate(big["nodes"]):
        assert node["argv"][-6:] == ["--nnodes", "2", "--node-rank", str(k), "--dist-init-addr", "10.0.0.1:20000"]
    text = run_cli("plan", str(TWO)).stdout
    assert "  node 0: python -m sglang.launch_server" in text
    assert "  node 1: python -m sglang.launch_server" in text
    assert "readiness: node 0's /health" in text


def test_node_one_runs_only_the_multi_node_instance(tmp_path: Path) -> None:
    out = tmp_path / "node1"
    _compile(TWO, out, "--node-rank", "1")
    assert not (out / "launch-small.sh").exists()  # a one-machine instance runs on node 0
    conf = (out / "supervisord.conf").read_text()
    assert "[program:sglang-big]" in conf
    assert "sglang-small" not in conf
    manifest = json.loads((out / "manifest.json").read_text())
    assert {i["name"]: i["enabled"] for i in manifest["instances"]} == {"big": True, "small": False}
    argv = _dry_run(out, "big")
    assert (_value(argv, "--nnodes"), _value(argv, "--node-rank")) == ("2", "1")
    assert _value(argv, "--dist-init-addr") == "10.0.0.1:20000"
    assert _value(argv, "--host") == "0.0.0.0"  # ranks > 0 bind it for their health server
    assert "--node-rank 1" in (out / "launch-big.sh").read_text().splitlines()[2]  # the regenerate line


def test_node_zero_and_one_differ_only_in_the_rank(tmp_path: Path) -> None:
    _compile(TWO, tmp_path / "n0")
    _compile(TWO, tmp_path / "n1", "--node-rank", "1")
    a, b = _dry_run(tmp_path / "n0", "big"), _dry_run(tmp_path / "n1", "big")
    assert [i for i, (x, y) in enumerate(zip(a, b)) if x != y] == [a.index("--node-rank") + 1]


def test_dist_init_addr_from_a_variable_at_launch(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _compile(ENV, out, "--node-rank", "1")
    argv = _dry_run(out, "dsv3", {"SGLANG_DIST_INIT_ADDR": "10.1.2.3:5000"})
    assert argv[-2:] == ["--dist-init-addr", "10.1.2.3:5000"]
    done = run([out / "launch-dsv3.sh", "--dry-run"], timeout=30, env={"PATH": SYSTEM_PATH})
    assert "reads --dist-init-addr from the variable SGLANG_DIST_INIT_ADDR" in done.stderr
    for bad, code in (("", "20"), ("10.1.2.3", "20"), ("10.1.2.3:5000", None)):
        done = run(
            [out / "launch-dsv3.sh", "--preflight"], timeout=60, env={"PATH": SYSTEM_PATH, "SGLANG_DIST_INIT_ADDR": bad}
        )
        lines = [line for line in done.stdout.splitlines() if "dist-init" in line]
        assert len(lines) == 1, done.stdout
        assert (f"FAIL ({code})" in lines[0]) if code else ("ok: dist-init address 10.1.2.3:5000" in lines[0])


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(host: str, port: int) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer((host, port), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("where", ["node 0", "this node"])
def test_readiness_of_a_rank_above_zero_is_node_zeros(where: str, tmp_path: Path) -> None:
    """On node 1 `wait` probes node 0's API (the dist-init host, read at run time), not the health server a
    rank > 0 runs on its own port: node 0 is 127.0.0.2 here, this node's server 127.0.0.1."""
    port = free_port()
    run_dir = Path(tempfile.mkdtemp(prefix="mn-", dir="/tmp"))
    config = tmp_path / "config.toml"
    config.write_text(
        ENV.read_text().replace('gpu_ids = "auto"', f"gpu_ids = 'auto'\nport = {port}")
        + f'runtime_dir = "{run_dir}/run"\nlog_dir = "{tmp_path}/logs"\n'
    )
    out = tmp_path / "out"
    _compile(config, out, "--node-rank", "1")
    server = _serve("127.0.0.2" if where == "node 0" else "127.0.0.1", port)
    try:
        done = run(
            [out / "check-and-run-sglang.sh", "wait", "--timeout", "20", "dsv3"],
            timeout=60,
            env={"PATH": SYSTEM_PATH, "HOME": str(tmp_path), "SGLANG_DIST_INIT_ADDR": "127.0.0.2:20000"},
        )
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(run_dir, ignore_errors=True)
    if where == "node 0":
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("dsv3: ready in ")
    else:  # a 200 on this node's own port is not readiness; nothing runs here, so it fails at once
        assert done.returncode == 1, done.stdout + done.stderr
        assert "dsv3: failed" in done.stdout
