"""The gateway's compiled side: its launch script's --dry-run, the plan's `gateway` object, the runner's row."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

from conftest import ROOT, run_cli

EXAMPLE = ROOT / "model-configs" / "sglang-two-models-gateway.toml"


def test_plan_json_gateway() -> None:
    plan = json.loads(run_cli("plan", str(EXAMPLE), "--format", "json").stdout)
    gw = plan["gateway"]
    assert (gw["host"], gw["port"], gw["policy"]) == ("0.0.0.0", 30000, "cache_aware")
    assert gw["metrics"] == {"host": "127.0.0.1", "port": 29000}
    assert gw["models"] == {"glm-4.7-flash": ["flash-0", "flash-1"], "qwen3-32b": ["qwen"]}
    assert [w["name"] for w in gw["workers"]] == ["flash-0", "flash-1", "qwen"]
    ports = {u["name"]: u["port"] for u in plan["instances"]}
    assert [w["url"] for w in gw["workers"]] == [f"http://127.0.0.1:{ports[n]}" for n in ("flash-0", "flash-1", "qwen")]
    assert 30000 not in ports.values() and 29000 not in ports.values()
    replicas = {u["name"]: (u["instance"], u["replica"], u["replicas"], u["gpu_ids"]) for u in plan["instances"]}
    assert replicas == {
        "flash-0": ("flash", 0, 2, [0, 1]),
        "flash-1": ("flash", 1, 2, [2, 3]),
        "qwen": ("qwen", None, 1, [4, 5, 6, 7]),
    }
    argv = gw["argv"]
    assert argv[argv.index("--worker-startup-timeout-secs") + 1] == "1800"  # master.ready_timeout
    assert "--api-key" not in argv and "--control-plane-api-keys" not in argv
    assert (
        json.loads(run_cli("plan", str(ROOT / "model-configs" / "sglang-single-gpu.toml"), "--format", "json").stdout)[
            "gateway"
        ]
        is None
    )


def test_plan_text_shows_the_gateway() -> None:
    text = run_cli("plan", str(EXAMPLE)).stdout
    assert "gateway: 0.0.0.0:30000   policy: cache_aware   metrics: 127.0.0.1:29000" in text
    assert "  model glm-4.7-flash: flash-0, flash-1" in text
    assert "  client key: read from $SGLANG_API_KEY at launch" in text


def test_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("compile", str(EXAMPLE), "-o", str(out)).exit_code == 0
    plan = json.loads(run_cli("plan", str(EXAMPLE), "--format", "json").stdout)
    missing = tmp_path / "no-such-project"
    key = "sk-gateway-dry-run-must-not-show"
    env = {
        "PATH": os.environ["PATH"],
        "AUTO_INFER_SGLANG_PIXI_PROJECT_DIR": str(missing),
        "AUTO_INFER_SGLANG_PIXI_ENVIRONMENT": "env",
        "SGLANG_API_KEY": key,
    }
    done = subprocess.run(
        ["bash", str(out / "launch-gateway.sh"), "--dry-run"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert key not in done.stdout + done.stderr
    exports, command = done.stdout.splitlines()
    assert exports == "PYTHONUNBUFFERED=1"
    secret_file = plan["gateway"]["secret_file"]
    assert shlex.split(command) == [
        f"{missing}/.pixi/envs/env/bin/python",
        str(out / "lib" / "gateway.py"),
        "--keys",
        secret_file,
        *plan["gateway"]["argv"],
    ]
    assert "reads the client key from the variable SGLANG_API_KEY" in done.stderr
    assert "random control-plane key" in done.stderr
    assert not missing.exists()


def test_check_says_when_the_environment_lacks_smg(monkeypatch) -> None:
    import sglangc.resolve

    assert run_cli("check", str(EXAMPLE)).stderr == ""  # both environments of the shipped template have smg
    monkeypatch.setattr(sglangc.resolve, "template_has", lambda environment, package: package != "smg")
    result = run_cli("check", str(EXAMPLE))
    assert result.exit_code == 0
    assert result.stderr == (
        f"{EXAMPLE}: warning: gateway.enable: the Pixi template's environment \"default\" has no smg (SGLang's "
        "model gateway): its bundle cannot run the gateway\n"
    )


def test_smg_parses_every_planned_gateway_argv() -> None:
    """smg's own parser (the real smg of the `test` extra) reads every planned gateway argv as planned."""
    from smg.launch_router import parse_router_args

    from sglangc.pipeline import check
    from support.real_sglang import CONFIGS

    plans = [p for c in CONFIGS if (p := check(c).plan) is not None and p.gateway is not None]
    assert len(plans) >= 2
    for plan in plans:
        gw = plan.gateway
        assert gw is not None
        args = parse_router_args(list(gw.argv))
        assert (args.host, args.port, args.policy) == (gw.host, gw.port, gw.policy)
        assert args.worker_urls == [url for _, url in gw.workers]
        assert (args.prometheus_host, args.prometheus_port) == (gw.metrics_host, gw.metrics_port)
        assert args.worker_startup_timeout_secs == plan.deployment.master.ready_timeout
        assert args.api_key is None and args.control_plane_api_keys == []


def test_an_environment_without_smg_stops_the_gateway_with_its_own_code(tmp_path: Path) -> None:
    """Exit 21 (not the launch scripts' 20, the dist-init address), with the reason in one line."""
    import sys

    from support import unstamped

    out = tmp_path / "out"
    assert run_cli("compile", str(EXAMPLE), "-o", str(out)).exit_code == 0
    prefix = tmp_path / "project" / ".pixi" / "envs" / "default" / "bin"
    prefix.mkdir(parents=True)
    (prefix / "python").symlink_to(sys.executable)  # an environment, but one without smg
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AUTO_INFER_SGLANG_PIXI_PROJECT_DIR": str(tmp_path / "project"),
        "SGLANG_API_KEY": "k",
    }
    done = subprocess.run(
        ["bash", str(out / "launch-gateway.sh")], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 21, done.stderr
    assert (
        unstamped(done.stderr)
        .strip()
        .splitlines()[-1]
        .startswith("launch-gateway: error: smg (SGLang's model gateway) is not installed in ")
    )
    meaning = subprocess.run(
        [
            "bash",
            "-c",
            '. "$1/prelude.sh"; sed -n "/^exit_meaning()/,/^}/p" "$1/runner.sh" > "$2"; . "$2"; exit_meaning 21',
            "_",
            str(out / "lib"),
            str(tmp_path / "f.sh"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert meaning.stdout == "21 = smg (the gateway) not installed", meaning.stdout + meaning.stderr
