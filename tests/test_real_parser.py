"""Every argv sglangc plans is accepted by the real SGLang argument parser of the version it targets.

The parser runs in a CPU-only SGLang install (tools/install-sglang-parser.sh) named by
SGLANGC_SGLANG_PYTHON_<version with non-alphanumerics as _>; .ci/run provides them (support.real_sglang).
"""

from __future__ import annotations

import pytest

from support.real_sglang import planned, planned_versions, real_sglang


@pytest.mark.parametrize("version", planned_versions())
def test_real_parser_accepts_every_planned_argv(version: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    sglang = real_sglang(tmp_path_factory, version)
    assert sglang.exit == 0, sglang.stderr
    units = planned(version)
    assert sglang.argvs == [list(u.argv) for _, u, _ in units]
    assert len(sglang.parsed) == len(units)
    for (where, unit, inst), parsed in zip(units, sglang.parsed):
        assert parsed["model_path"] == unit.model_path, where
        assert parsed["host"] == unit.host, where
        assert parsed["port"] == unit.port, where
        assert parsed["served_model_name"] in (unit.served_model_name, None), where
        assert parsed["tp_size"] == inst.tp_size, where
        assert parsed["reasoning_parser"] == inst.reasoning_parser, where
        assert parsed["tool_call_parser"] == inst.tool_call_parser, where
        assert parsed["api_key"] == ("sk-test" if inst.api_key_env else None), where
