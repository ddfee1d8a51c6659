"""Hostile strings reach SGLang's argv and environment byte for byte and are never executed:
through `launch-<name>.sh --dry-run` and through a real start (with supervisord and without)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from support.net import http

from .conftest import MODES, toml_str

# Directories of the deployment itself with awkward names (supervisord.conf refuses only " ;" and " #").
AWKWARD_DIR = 'it\'s "odd" $(touch canary) `x` 100% ü'


def hostile(canary: Path) -> dict[str, str]:
    """name → value; every value is legal in the config (no control characters)."""
    return {
        "quotes": """it's a "quoted" 'value'""",
        "dollar_paren": f"$(touch {canary})",
        "backticks": f"`touch {canary}`",
        "percent": "100% %(here)s %(ENV_HOME)s %%",
        "semicolon": "a ;b; c",
        "hash": "a #b #",
        "spaces": "  leading, double  and trailing  ",
        "non_ascii": "ünïcödé 日本語 ✓ ü",
        "shell_words": "\\ back\\slash $HOME ${HOME} ~ * ? [a] {x,y} !! && || > /dev/null <",
        "empty": "",
        "braces": "{{ jinja }} {% raw %} {# no #}",
    }


def config_for(values: dict[str, str], canary: Path) -> tuple[str, str, str, str]:
    """The instance table, with the model directory's name, served_model_name and chat-template hostile."""
    model_dir = f'model it\'s "m" $(touch {canary.name}) `touch {canary.name}` 100% ;x #y ünï'
    served = f'served it\'s "s" $(touch {canary}) `touch {canary}` %(here)s 100% ;x #y ünï ~'
    template = f"tpl '$(touch {canary})' `touch {canary}` % ; # {{{{ x }}}} ünï"
    env = ", ".join(f"H_{k.upper()} = {toml_str(v)}" for k, v in values.items())
    text = f"""
[instances.x]
model_path = {toml_str("<<root>>/" + model_dir)}
served_model_name = {toml_str(served)}
port = <<port_x>>
gpu_ids = [0]
env = {{ SGLANG_STANDIN_RECORD = "<<record_x>>", {env} }}
server_args = {{ "chat-template" = {toml_str(template)} }}
"""
    return text, model_dir, served, template


def parse_dry_run(stdout: str) -> tuple[dict[str, str], list[str]]:
    assert "\r" not in stdout and "$'" not in stdout
    lines = stdout.split("\n")
    assert lines[-1] == "", "ends with a newline"
    *exports, command = lines[:-1]
    env = {}
    for line in exports:
        (word,) = shlex.split(line)
        key, _, value = word.partition("=")
        env[key] = value
    return env, shlex.split(command)


@pytest.mark.parametrize("mode", MODES)
def test_hostile_values_byte_for_byte(deploy, mode, tmp_path, projects):
    canary = tmp_path / "canary"
    values = hostile(canary)
    text, model_dir, served, template = config_for(values, canary)
    model = tmp_path / model_dir
    model.mkdir()
    (model / "config.json").write_text("{}")
    project = tmp_path / f"pixi {AWKWARD_DIR}"
    project.symlink_to(projects[mode], target_is_directory=True)
    dep = deploy(text, ["x"], mode=mode, project=project, log_name=f"logs {AWKWARD_DIR}", run_name="r 'q' $x %")
    launch = dep.out / "launch-x.sh"

    # --dry-run: the exports and the command, read back exactly by shlex.split, without a $PREFIX
    done = subprocess.run(
        ["bash", str(launch), "--dry-run"],
        capture_output=True,
        check=False,
        cwd=tmp_path,
        env={**dep.env, "AUTO_INFER_SGLANG_PIXI_PROJECT_DIR": str(tmp_path / "none")},
    )
    assert done.returncode == 0, done.stderr
    env, command = parse_dry_run(done.stdout.decode("utf-8"))
    for key, value in values.items():
        assert env[f"H_{key.upper()}"] == value
    prefix = tmp_path / "none" / ".pixi" / "envs" / "default"
    assert command[:3] == [f"{prefix}/bin/python", "-m", "sglang.launch_server"]
    compiled = subprocess.run(["bash", str(launch), "--dry-run"], capture_output=True, check=False, env=dep.env)
    assert shlex.split(compiled.stdout.decode().splitlines()[-1])[0] == f"{project}/.pixi/envs/default/bin/python"
    argv = command[3:]
    assert argv[argv.index("--model-path") + 1] == str(model)
    assert argv[argv.index("--served-model-name") + 1] == served
    assert argv[argv.index("--chat-template") + 1] == template

    # a real start: the stand-in records what it got
    started = dep.run_ok("start")
    if mode == "supervisord":
        assert f"{project}/.pixi/envs/default/bin/supervisord" in started.stdout
    dep.run_ok("wait", "--timeout", "30")
    record = dep.record("x")
    # the server runs in its activated environment: $PREFIX/bin first, then the caller's PATH
    assert record["env"]["PATH"] == f"{project}/.pixi/envs/default/bin:{dep.env['PATH']}"
    assert record["env"]["CONDA_PREFIX"] == f"{project}/.pixi/envs/default"
    assert (dep.log_dir / "sglang-server-x.log").stat().st_size > 0
    assert record["argv"] == argv
    for key, value in env.items():  # the cache directories live in the project directory, named otherwise above
        assert record["env"][key] == value.replace(str(tmp_path / "none"), str(project)), key
    assert record["args"]["model_path"] == str(model)
    assert record["args"]["served_model_name"] == served
    assert record["args"]["chat_template"] == template
    status, body = http(dep.ports["x"], "/v1/models")
    assert status == 200 and json.loads(body)["data"][0]["id"] == served
    dep.run_ok("stop")

    # nothing was executed, wherever a shell might have run it
    for where in (tmp_path, dep.out, dep.run_dir, Path("/")):
        assert not (where / canary.name).exists(), where
    assert not canary.exists()
