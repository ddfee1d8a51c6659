"""Every argv sglangc plans is accepted by the real SGLang argument parser of the version it targets.

The parser runs in a CPU-only SGLang install (tools/install-sglang-parser.sh) named by
SGLANGC_SGLANG_PYTHON_<version with non-alphanumerics as _>; .ci/run provides them (support.real_sglang).
"""

from __future__ import annotations

import pytest

from sglangc.catalog import _words, load_catalog, shipped_versions
from support.real_sglang import ask_sglang, planned, planned_versions, real_sglang


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


SIZES = [
    "128k", "25.6k", "1M", "2G", "1T", "128Ki", "1Mi", "4096", " 4096 ", "1_000", "+12", "0",
    "128K", "1m", "2g", "128 k", "128ki", "1.5Ki", "1.5", "k", "", "12e3", "0x10", "1.0k", "128kB", "١٢٨",
]  # fmt: skip
READ_SIZES = r"""
import argparse, contextlib, io, json, sys, warnings
warnings.simplefilter("ignore")
with contextlib.redirect_stdout(io.StringIO()):
    from sglang.srt.server_args import ServerArgs
parser = argparse.ArgumentParser()
ServerArgs.add_cli_args(parser)
convert = next(a.type for a in parser._actions if "--context-length" in a.option_strings)
out = []
for text in json.load(sys.stdin):
    try:
        out.append(convert(text))
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        out.append(None)
print(json.dumps(out))
"""


@pytest.mark.parametrize("version", shipped_versions())
def test_size_values_as_sglang_reads_them(version: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """sglangc accepts a size string exactly when SGLang's own converter of that version does."""
    catalog = load_catalog(version)
    assert catalog is not None
    option = catalog.options["context-length"]
    assert option.type == "human_int"
    read = ask_sglang(tmp_path_factory, version, READ_SIZES, SIZES)
    for text, value in zip(SIZES, read, strict=True):
        _, problem = _words(option, "context-length", text)
        assert (problem == "") == (value is not None), (text, value, problem)
    assert dict(zip(SIZES, read))["128k"] == 128000 and dict(zip(SIZES, read))["128Ki"] == 131072
