"""Command-line behaviour that is not about one config's findings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import EXAMPLES, run_cli
from support import ROOT


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


def test_init_writes_the_starter_case(tmp_path) -> None:
    """`sglangc init` prints tests/cases/valid/init-starter/config.toml (a valid case), bar its #:schema line."""
    done = run_cli("init", "--gpus", "8", "--model", "/llm-models/GLM-4.7")
    assert done.exit_code == 0
    case = (ROOT / "tests" / "cases" / "valid" / "init-starter" / "config.toml").read_text()
    assert done.stdout.splitlines()[1:] == case.splitlines()[1:]
    assert done.stdout.startswith("#:schema /") and done.stdout.splitlines()[0].endswith("sglang-config.schema.json")


def test_init_to_a_file_writes_the_schema_beside_it_and_never_overwrites(tmp_path) -> None:
    target = tmp_path / "cfg.toml"
    assert run_cli("init", "-o", str(target)).exit_code == 0
    assert target.read_text().startswith("#:schema ./sglang-config.schema.json\n")
    assert (tmp_path / "sglang-config.schema.json").read_text() == run_cli("schema").stdout
    assert run_cli("check", str(target)).exit_code == 0
    target.write_text("mine\n")
    again = run_cli("init", "-o", str(target))
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert target.read_text() == "mine\n"


def test_schema_to_a_file(tmp_path) -> None:
    out = tmp_path / "s.json"
    assert run_cli("schema", "-o", str(out)).exit_code == 0
    assert out.read_text() == run_cli("schema").stdout
    assert run_cli("schema", "-o", str(tmp_path / "no" / "dir.json")).exit_code == 2
