"""examples/infer-dev: the pieces a user adds to the infer-dev image, each exercised (no Docker engine here)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import yaml

from sglangc.pipeline import check
from support import ROOT

EXAMPLE = ROOT / "examples" / "infer-dev"
CONFIG = ROOT / "model-configs" / "sglang-glm-4.7-tp8.toml"
DIR = "/soft/app/sglang"


def _compose() -> dict:
    return yaml.safe_load((EXAMPLE / "compose.yaml").read_text())["services"]["infer-dev"]


def test_compose_matches_the_config_and_the_contract(tmp_path: Path) -> None:
    service = _compose()
    env = service["environment"]
    plan = check(CONFIG).plan
    assert plan is not None
    dep = plan.deployment
    assert env["AUTO_INFER_SGLANG_BUNDLE_PATH"] == dep.bundle.path
    assert env["AUTO_INFER_SGLANG_PIXI_PROJECT_DIR"] == dep.master.pixi_project_dir
    assert env["AUTO_INFER_SGLANG_PIXI_ENVIRONMENT"] == dep.master.pixi_environment
    assert env["AUTO_INFER_SGLANG_BUNDLE_ON_BOOT"] == env["AUTO_INFER_SGLANG_ON_BOOT"] == "1"
    # every gate and setting the compose file passes is one the generated scripts read
    subprocess.run(["sglangc", "compile", str(CONFIG), "-o", str(tmp_path)], check=True, capture_output=True)
    scripts = "".join(p.read_text() for p in [*tmp_path.glob("*.sh"), *tmp_path.glob("lib/*.sh")])
    for name in env:
        if name.startswith("AUTO_INFER_SGLANG_"):
            assert name in scripts, name
    key_env = {u.api_key_env for u in plan.enabled}
    assert key_env <= set(env), "the API key variable the config names is passed into the container"
    (port_map,) = service["ports"]
    assert port_map == "${HOST_PORT_SGLANG:-11982}:30000"
    assert int(port_map.rsplit(":", 1)[1]) in {u.port for u in plan.enabled}
    assert any(u.host == "0.0.0.0" for u in plan.enabled), "a port mapping needs the server on 0.0.0.0"
    targets = {v.split(":")[1] for v in service["volumes"]}
    assert {"/llm-models", "/hard/volume/workspace"} <= targets
    assert all(u.model_path.startswith("/llm-models/") for u in plan.enabled)
    assert dep.bundle.path.startswith("/hard/volume/workspace/")


def test_dockerfile_compile_step_runs(tmp_path: Path) -> None:
    text = (EXAMPLE / "Dockerfile.stage2").read_text()
    (command,) = [line[len("RUN ") :] for line in text.splitlines() if line.startswith("RUN sglangc")]
    assert f"-o {DIR}" in command
    assert re.search(rf"COPY --from=\S+ {DIR} {DIR}", text)
    out = tmp_path / "soft-app-sglang"
    command = command.replace("/src/sglang.toml", shlex.quote(str(CONFIG))).replace(DIR, shlex.quote(str(out)))
    subprocess.run(["bash", "-c", command], check=True, capture_output=True)
    assert (out / "entry-hook.sh").exists() and (out / "manifest.json").exists()


def test_entrypoint_line_keeps_a_strict_entrypoint_booting(tmp_path: Path) -> None:
    (line,) = [
        x for x in (EXAMPLE / "infer-dev-entry.sh.patch").read_text().splitlines() if x and not x.startswith("#")
    ]
    out = tmp_path / "app"
    subprocess.run(["sglangc", "compile", str(CONFIG), "-o", str(out)], check=True, capture_output=True)
    for hook_dir, present in ((out, True), (tmp_path / "missing", False)):
        entry = tmp_path / "infer-dev-entry.sh"
        entry.write_text(f"set -euo pipefail\n{line.replace(DIR, str(hook_dir))}\necho booted\n")
        env = {"PATH": "/usr/bin:/bin", "AUTO_INFER_SGLANG_ON_BOOT": "0", "AUTO_INFER_SGLANG_BUNDLE_ON_BOOT": "0"}
        done = subprocess.run(["bash", str(entry)], capture_output=True, text=True, env=env)
        assert done.returncode == 0, (present, done.stderr)
        assert done.stdout.splitlines()[-1] == "booted"
