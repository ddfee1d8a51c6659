"""Every argv sglangc plans is accepted by the real SGLang argument parser of the version it targets.

The parser runs in a CPU-only SGLang install (tools/install-sglang-parser.sh) named by
SGLANGC_SGLANG_PYTHON_<version with non-alphanumerics as _>; .ci/run provides them (support.real_sglang).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from sglangc.catalog import _words, load_catalog, shipped_versions
from support import SYSTEM_PATH, not_here
from support.cli import run_cli
from support.procs import run
from support.real_sglang import ask_sglang, env_var, planned, planned_versions, real_sglang


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


# SGLang's documented two-node launch (docs/references/multi_node_deployment/multi_node.md, Llama 3.1 405B):
# every node runs this command with its own --node-rank.
DOC_MULTI_NODE = (
    "--model-path meta-llama/Meta-Llama-3.1-405B-Instruct --tp 16 --dist-init-addr 172.16.4.52:20000 "
    "--nnodes 2 --node-rank {rank}"
)
MULTI_NODE_CONFIG = """
version = 1
sglang_version = "0.5.23"
[master]
pixi_environment = "latest"
[instances.llama]
model_path = "meta-llama/Meta-Llama-3.1-405B-Instruct"
host = "0.0.0.0"
gpu_ids = [0, 1, 2, 3, 4, 5, 6, 7]
tp_size = 16
nnodes = 2
"""
PARSE = r"""
import argparse, json, sys, warnings
from sglang.srt.server_args import ServerArgs

parser = argparse.ArgumentParser(prog="sglang serve")
ServerArgs.add_cli_args(parser)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    print(json.dumps([vars(parser.parse_args(argv)) for argv in json.load(sys.stdin)], default=repr))
"""


@pytest.mark.parametrize("address", ["dist_init_addr", "dist_init_addr_env"])
def test_every_nodes_dry_run_parses_like_sglangs_documented_multi_node_command(address: str, tmp_path: Path) -> None:
    """Each node's `launch-<name>.sh --dry-run` command, read back by SGLang 0.5.23's own parser, gives the
    namespace of SGLang's documented command for that node, but for --host (0.0.0.0, so that node 0's API
    and the health servers of ranks > 0 can be reached)."""
    python = os.environ.get(env_var("0.5.23")) or not_here(f"{env_var('0.5.23')} is not set: no real SGLang 0.5.23")
    config = tmp_path / "config.toml"
    if address == "dist_init_addr":
        config.write_text(MULTI_NODE_CONFIG + 'dist_init_addr = "172.16.4.52:20000"\n')
        env = {"PATH": SYSTEM_PATH}
    else:
        config.write_text(MULTI_NODE_CONFIG + 'dist_init_addr_env = "HEAD_ADDR"\n')
        env = {"PATH": SYSTEM_PATH, "HEAD_ADDR": "172.16.4.52:20000"}
    ours, docs = [], []
    for rank in (0, 1):
        out = tmp_path / f"node{rank}"
        done = run_cli("compile", str(config), "--node-rank", str(rank), "-o", str(out))
        assert done.exit_code == 0, done.stderr
        dry = run([out / "launch-llama.sh", "--dry-run"], timeout=30, env=env)
        assert dry.returncode == 0, dry.stderr
        words = shlex.split(dry.stdout.splitlines()[-1])
        assert words[1:3] == ["-m", "sglang.launch_server"]
        ours.append(words[3:])
        docs.append(shlex.split(DOC_MULTI_NODE.format(rank=rank)))
    parsed = subprocess.run(
        [python, "-c", PARSE],
        input=json.dumps(ours + docs),
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": SYSTEM_PATH, "HOME": str(tmp_path)},
    )
    assert parsed.returncode == 0, parsed.stderr[-4000:]
    namespaces = json.loads(parsed.stdout.strip().splitlines()[-1])
    for rank in (0, 1):
        mine, doc = namespaces[rank], namespaces[2 + rank]
        assert (doc["nnodes"], doc["node_rank"], doc["dist_init_addr"]) == (2, rank, "172.16.4.52:20000")
        differ = sorted(k for k in doc if mine.get(k) != doc[k])
        assert differ == ["host"], {k: (mine.get(k), doc[k]) for k in differ}
        assert (mine["host"], doc["host"]) == ("0.0.0.0", "127.0.0.1")
        assert sorted(mine) == sorted(doc)


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
