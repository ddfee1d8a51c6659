"""Every argv sglangc plans is accepted by the real SGLang argument parser of the version it targets.

The parser runs in a CPU-only SGLang install (tools/install-sglang-parser.sh) named by
SGLANGC_SGLANG_PYTHON_<version with non-alphanumerics as _>; .ci/run provides them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import typing as t

import pytest

from sglangc.pipeline import check
from support import EXAMPLES, ROOT, not_here

PARSE = r"""
import argparse, json, os, sys, tempfile
from sglang.srt.server_args import ServerArgs
try:
    from sglang.srt.utils.server_args_config_parser import ConfigArgumentMerger
except ImportError:
    from sglang.srt.server_args_config_parser import ConfigArgumentMerger
fd, secret = tempfile.mkstemp(suffix=".yaml")
os.write(fd, b"api-key: 'sk-test'\n"); os.close(fd)
alias = {"tp_size": "tensor_parallel_size", "dp_size": "data_parallel_size"}
keys = ["model_path", "served_model_name", "host", "port", "tp_size", "dp_size", "reasoning_parser",
        "tool_call_parser", "trust_remote_code", "mem_fraction_static", "api_key", "context_length"]
results = []
for argv in json.load(sys.stdin):
    if "--config" in argv:
        argv[argv.index("--config") + 1] = secret
    # What prepare_server_args does before it builds ServerArgs (whose __post_init__ wants a GPU in some versions).
    parser = argparse.ArgumentParser(prog="sglang serve")
    ServerArgs.add_cli_args(parser)
    if "--config" in argv:
        argv = ConfigArgumentMerger(parser).merge_config_with_args(argv)
    ns = vars(parser.parse_args(argv))
    results.append({k: ns.get(k, ns.get(alias.get(k, k))) for k in keys})
print(json.dumps(results))
"""

CONFIGS = [*EXAMPLES, *sorted((ROOT / "tests" / "cases" / "valid").glob("*/config.toml"))]


def _python(version: str) -> str:
    var = "SGLANGC_SGLANG_PYTHON_" + re.sub(r"[^0-9A-Za-z]", "_", version)
    python = os.environ.get(var)
    if not python:
        not_here(f"{var} is not set: no real SGLang {version} parser here (.ci/run installs it)")
    return python


def _plans() -> dict[str, list[tuple[str, t.Any, t.Any]]]:
    """Enabled instances of every example and valid case, grouped by the SGLang version they target."""
    by_version: dict[str, list[tuple[str, t.Any, t.Any]]] = {}
    for config in CONFIGS:
        result = check(config)
        assert result.plan is not None, result.findings
        for unit in result.plan.enabled:
            inst = result.plan.deployment.instance(unit.name)
            by_version.setdefault(result.plan.deployment.sglang_version, []).append((f"{config}:{unit.name}", unit, inst))
    return by_version


@pytest.mark.parametrize("version", sorted(_plans()))
def test_real_parser_accepts_every_planned_argv(version: str) -> None:
    python = _python(version)
    units = _plans()[version]
    done = subprocess.run([python, "-c", PARSE], input=json.dumps([list(u.argv) for _, u, _ in units]),
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]
    parsed_all = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(parsed_all) == len(units)
    for (where, unit, inst), parsed in zip(units, parsed_all):
        assert parsed["model_path"] == unit.model_path, where
        assert parsed["host"] == unit.host, where
        assert parsed["port"] == unit.port, where
        assert parsed["served_model_name"] in (unit.served_model_name, None), where
        assert parsed["tp_size"] == inst.tp_size, where
        assert parsed["reasoning_parser"] == inst.reasoning_parser, where
        assert parsed["tool_call_parser"] == inst.tool_call_parser, where
        assert parsed["api_key"] == ("sk-test" if inst.api_key_env else None), where
