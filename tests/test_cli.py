"""Command-line behaviour that is not about one config's findings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import EXAMPLES, run_cli


@pytest.mark.parametrize("args", [["schema"], ["--help"], ["check", "--help"]])
def test_light_commands_skip_heavy_imports(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sglangc", *args], capture_output=True, text=True, check=True
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "networkx" not in imported
    assert "jinja2" not in imported


def test_usage_errors_exit_2() -> None:
    assert run_cli("check").exit_code == 2
    assert run_cli("plan").exit_code == 2
    assert run_cli("nosuchcommand").exit_code == 2
    assert run_cli("plan", str(EXAMPLES[0]), "--format", "yaml").exit_code == 2


def test_strict_turns_warnings_into_failure(write_config) -> None:
    config = write_config('version = 1\n[master]\ngpu_count = 1\n[instances.a]\nmodel_path = "/m"\nhost = "0.0.0.0"\n')
    relaxed = run_cli("check", str(config))
    assert relaxed.exit_code == 0
    assert (
        relaxed.stderr
        == f'{config}: warning: instances.a.host: "0.0.0.0" accepts connections from anywhere and no api_key_env is set: anyone who reaches the port can use the server\n'
    )
    assert run_cli("check", "--strict", str(config)).exit_code == 1


def test_plan_json_is_stable_and_complete() -> None:
    import json

    result = run_cli("plan", "--format", "json", str(EXAMPLES[0]))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["format"] == 1
    for inst in doc["instances"]:
        assert {"name", "enabled", "gpu_ids", "host", "port", "wave", "depends_on", "argv"} <= set(inst)
        assert inst["argv"][:2] == ["--model-path", inst["model_path"]]
    assert result.stdout == run_cli("plan", "--format", "json", str(EXAMPLES[0])).stdout


def test_plan_redacts_secret_looking_env(write_config) -> None:
    config = write_config(
        'version = 1\n[master]\ngpu_count = 1\n[instances.a]\nmodel_path = "/m"\nenv = { HF_TOKEN = "hf_abcdef" }\n'
    )
    for fmt in ("text", "json"):
        result = run_cli("plan", "--format", fmt, str(config))
        assert result.exit_code == 0
        assert "hf_abcdef" not in result.stdout
        assert "<redacted>" in result.stdout
