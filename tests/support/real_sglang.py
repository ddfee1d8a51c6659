"""The real SGLang of a version, in one process per version and test worker.

A CPU-only install made by tools/install-sglang-parser.sh, named by SGLANGC_SGLANG_PYTHON_<version with every
non-alphanumeric character as "_"> (.ci/run sets them). Importing SGLang takes seconds and two test modules need
it, so one process answers both: what `python tools/dump_sglang_catalog.py` prints (run first, as its command line
runs it: it scrubs SGLANG_* variables before importing sglang), and how SGLang's own argument parser reads argvs.
Tests that use it carry `group(version)`, so that pytest-xdist (`--dist loadgroup`) runs them in one worker.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import queue
import re
import subprocess
import tempfile
import threading
import typing as t
from pathlib import Path

import pytest

from support import ROOT, not_here

DUMP_TOOL = ROOT / "tools" / "dump_sglang_catalog.py"
MARK = "@@sglangc-real-sglang@@ "

SERVE = r"""
import argparse, contextlib, io, json, os, runpy, sys, tempfile, warnings

tool, mark = sys.argv[1:3]
sys.argv = [tool]  # the tool's own command line: no arguments, the catalog on stdout


def answer(value):
    sys.__stdout__.write(mark + json.dumps(value) + "\n")
    sys.__stdout__.flush()


printed, code = io.StringIO(), 0
with contextlib.redirect_stdout(printed):
    try:
        runpy.run_path(tool, run_name="__main__")
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1

from sglang.srt.server_args import ServerArgs
try:
    from sglang.srt.utils.server_args_config_parser import ConfigArgumentMerger
except ImportError:
    from sglang.srt.server_args_config_parser import ConfigArgumentMerger

fd, secret = tempfile.mkstemp(suffix=".yaml")
os.write(fd, b"api-key: 'sk-test'\n")
os.close(fd)
ALIAS = {"tp_size": "tensor_parallel_size", "dp_size": "data_parallel_size"}
KEYS = ["model_path", "served_model_name", "host", "port", "tp_size", "dp_size", "reasoning_parser",
        "tool_call_parser", "trust_remote_code", "mem_fraction_static", "api_key", "context_length"]


# What prepare_server_args does before it builds ServerArgs (whose __post_init__ wants a GPU in some versions).
parser = argparse.ArgumentParser(prog="sglang serve")
ServerArgs.add_cli_args(parser)


def parse(argv):
    if "--config" in argv:
        argv[argv.index("--config") + 1] = secret
        argv = ConfigArgumentMerger(parser).merge_config_with_args(argv)
    ns = vars(parser.parse_args(argv))
    return {k: ns.get(k, ns.get(ALIAS.get(k, k))) for k in KEYS}


for line in sys.stdin:
    request = json.loads(line)
    if request == "catalog":
        answer({"code": code, "stdout": printed.getvalue()})
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            answer([parse(argv) for argv in request])
"""


def env_var(version: str) -> str:
    return "SGLANGC_SGLANG_PYTHON_" + re.sub(r"[^0-9A-Za-z]", "_", version)


def group(version: str) -> pytest.MarkDecorator:
    return pytest.mark.xdist_group(f"real-sglang-{version}")


class RealSGLang:
    def __init__(self, version: str, python: str) -> None:
        self.version, self.python = version, python
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - open as long as the process runs
        self._proc = subprocess.Popen([python, "-c", SERVE, str(DUMP_TOOL), MARK], cwd=ROOT, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        atexit.register(self.close)

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith(MARK):
                self._lines.put(line[len(MARK):])
        self._lines.put(None)

    def errors(self) -> str:
        """The tail of what the process wrote on stderr."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-4000:]

    def ask(self, request: t.Any, timeout: float = 600) -> t.Any:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the real SGLang {self.version} gave no answer within {timeout:g} s\n{self.errors()}",
                        pytrace=False)
        assert line is not None, f"the real SGLang {self.version} ({self.python}) ended:\n{self.errors()}"
        return json.loads(line)

    def catalog(self) -> tuple[int, str]:
        """(exit status, standard output) of `python tools/dump_sglang_catalog.py`."""
        answer = self.ask("catalog")
        return answer["code"], answer["stdout"]

    def parse(self, argvs: list[list[str]]) -> list[dict[str, t.Any]]:
        """Per argv, what SGLang's parser makes of a few fields (model_path, host, port, tp_size, api_key, …)."""
        return self.ask(argvs)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


@functools.cache
def _start(version: str, python: str) -> RealSGLang:
    return RealSGLang(version, python)


def real_sglang(version: str) -> RealSGLang:
    """The process of this version (started on first use); not_here when no such install is named."""
    var = env_var(version)
    python = os.environ.get(var)
    if not python:
        not_here(f"{var} is not set: no real SGLang {version} here (make one with `bash tools/install-sglang-parser.sh"
                 f" DIR {version}` and set {var}=DIR/bin/python, as .ci/run does)")
    assert Path(python).exists(), f"{var}={python}: no such interpreter"
    return _start(version, python)
