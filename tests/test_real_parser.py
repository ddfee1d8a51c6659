"""Every argv sglangc plans is accepted by the real SGLang argument parser of the version it targets.

The parser runs in a CPU-only SGLang install (tools/install-sglang-parser.sh) named by
SGLANGC_SGLANG_PYTHON_<version with non-alphanumerics as _>; .ci/run provides them (support.real_sglang).
"""

from __future__ import annotations

import typing as t

import pytest

from sglangc.pipeline import check
from support import EXAMPLES, ROOT
from support.real_sglang import group, real_sglang

CONFIGS = [*EXAMPLES, *sorted((ROOT / "tests" / "cases" / "valid").glob("*/config.toml"))]


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


@pytest.mark.parametrize("version", [pytest.param(v, marks=group(v)) for v in sorted(_plans())])
def test_real_parser_accepts_every_planned_argv(version: str) -> None:
    sglang = real_sglang(version)
    units = _plans()[version]
    parsed_all = sglang.parse([list(u.argv) for _, u, _ in units])
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
