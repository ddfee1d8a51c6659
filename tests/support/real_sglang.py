"""The real SGLang of a version, asked once per test session.

A CPU-only install made by tools/install-sglang-parser.sh, named by SGLANGC_SGLANG_PYTHON_<version with every
non-alphanumeric character as "_"> (.ci/run sets them). Importing SGLang takes seconds and two test modules need
it, so one process per version answers both, and every pytest-xdist worker reads its answers (support.built_once):
what `python tools/dump_sglang_catalog.py` prints (run first, as its command line runs it: it scrubs SGLANG_*
variables before importing sglang), and how SGLang's own argument parser reads every argv sglangc plans for the
shipped examples and the valid cases that target that version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import typing as t
from pathlib import Path

from support import EXAMPLES, ROOT, built_once, not_here

DUMP_TOOL = ROOT / "tools" / "dump_sglang_catalog.py"
CONFIGS = [*EXAMPLES, *sorted((ROOT / "tests" / "cases" / "valid").glob("*/config.toml"))]

ASK = r"""
import argparse, contextlib, io, json, os, runpy, sys, tempfile, warnings

tool = sys.argv[1]
argvs = json.load(sys.stdin)
sys.argv = [tool]  # the tool's own command line: no arguments, the catalog on stdout
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


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    parsed = [parse(list(argv)) for argv in argvs]
print(json.dumps({"catalog_exit": code, "catalog": printed.getvalue(), "parsed": parsed}))
"""


def env_var(version: str) -> str:
    return "SGLANGC_SGLANG_PYTHON_" + re.sub(r"[^0-9A-Za-z]", "_", version)


def planned(version: str) -> list[tuple[str, t.Any, t.Any]]:
    """(where, LaunchUnit, Instance) of every enabled instance of the examples and valid cases for `version`."""
    from sglangc.pipeline import check

    units = []
    for config in CONFIGS:
        result = check(config)
        assert result.plan is not None, f"{config}: {result.findings}"
        if result.plan.deployment.sglang_version == version:
            units += [
                (f"{config}:{u.name}", u, result.plan.deployment.instance(u.instance)) for u in result.plan.enabled
            ]
    return units


def planned_versions() -> list[str]:
    from sglangc.pipeline import check

    return sorted({plan.deployment.sglang_version for c in CONFIGS if (plan := check(c).plan) is not None})


@dataclasses.dataclass
class Answers:
    python: str
    exit: int  # of the process that asked SGLang
    stderr: str
    catalog_exit: int
    catalog: str  # what tools/dump_sglang_catalog.py printed
    argvs: list[list[str]]
    parsed: list[dict[str, t.Any]]  # per argv: model_path, host, port, tp_size, api_key, …


def real_sglang(tmp_path_factory: t.Any, version: str) -> Answers:
    """The answers of the real SGLang `version`; not_here when no such install is named."""
    python = _python(version)

    def ask(directory: Path) -> None:
        argvs = [list(unit.argv) for _, unit, _ in planned(version)]
        done = subprocess.run(
            [python, "-c", ASK, str(DUMP_TOOL)],
            input=json.dumps(argvs),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = done.stdout.strip().splitlines()
        answer = json.loads(lines[-1]) if done.returncode == 0 and lines else {}
        (directory / "answers.json").write_text(
            json.dumps(
                {
                    "python": python,
                    "exit": done.returncode,
                    "stderr": done.stderr[-4000:],
                    "argvs": argvs,
                    "catalog_exit": answer.get("catalog_exit", -1),
                    "catalog": answer.get("catalog", ""),
                    "parsed": answer.get("parsed", []),
                }
            )
        )

    answers = built_once(tmp_path_factory, f"real-sglang-{version}", ask) / "answers.json"
    return Answers(**json.loads(answers.read_text()))


# SGLang's own start-up resolution, on CPU: argparse, then ServerArgs.from_cli_args, resolve_once (where the
# version has it) and check_server_args, for a local directory holding only a tiny config.json, with
# `--device cpu --skip-tokenizer-init` (reference: sglang-facts §9). Layouts argparse accepts but SGLang refuses
# at start-up (DP attention with tp_size not divisible by the attention-DP size, DP replicas beside attention DP)
# fail here as they would on the GPUs.
RESOLVE = r"""
import argparse, contextlib, hashlib, io, json, logging, os, sys, tempfile, warnings

argvs = json.load(sys.stdin)
model = tempfile.mkdtemp(prefix="tiny-model-")
with open(os.path.join(model, "config.json"), "w") as f:
    json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
               "intermediate_size": 128, "num_attention_heads": 8, "num_key_value_heads": 8,
               "num_hidden_layers": 2, "vocab_size": 256, "max_position_embeddings": 1048576,
               "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16"}, f)
fd, secret = tempfile.mkstemp(suffix=".yaml")
os.write(fd, b"api-key: 'sk-test'\n")
os.close(fd)
logging.disable(logging.CRITICAL)
warnings.simplefilter("ignore")
with contextlib.redirect_stdout(io.StringIO()):
    from sglang.srt.server_args import ServerArgs
    try:
        from sglang.srt.utils.server_args_config_parser import ConfigArgumentMerger
    except ImportError:
        from sglang.srt.server_args_config_parser import ConfigArgumentMerger


def resolve(argv):
    argv = list(argv)
    argv[argv.index("--model-path") + 1] = model
    if "--config" in argv:
        argv[argv.index("--config") + 1] = secret
    argv += ["--device", "cpu", "--skip-tokenizer-init"]
    parser = argparse.ArgumentParser(prog="sglang serve")
    ServerArgs.add_cli_args(parser)
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            if "--config" in argv:
                argv = ConfigArgumentMerger(parser).merge_config_with_args(argv)
            server_args = ServerArgs.from_cli_args(parser.parse_args(argv))
            if hasattr(server_args, "resolve_once"):
                server_args.resolve_once()
            server_args.check_server_args()
    except SystemExit:
        return "argparse: " + (err.getvalue().strip().splitlines() or ["exit"])[-1]
    except Exception as e:
        return f"{type(e).__name__}: {e}".strip()
    return ""


print(json.dumps([resolve(argv) for argv in argvs]))
"""


def sglang_resolution(tmp_path_factory: t.Any, version: str, argvs: list[list[str]]) -> list[str]:
    """What SGLang `version`'s own start-up resolution says of each argv (as sglangc plans it, after
    `sglang.launch_server`), run on CPU: "" where it accepts the layout, else its error in one line. One process
    per distinct list of argvs and session; not_here when no SGLang `version` is named (see real_sglang)."""
    return ask_sglang(tmp_path_factory, version, RESOLVE, argvs)


def ask_sglang(tmp_path_factory: t.Any, version: str, script: str, payload: t.Any) -> t.Any:
    """Run `script` with the python of the real SGLang `version`, `payload` as JSON on stdin; its last stdout line,
    read as JSON. Once per session for each script and payload, whatever the number of xdist workers."""
    python = _python(version)
    text = json.dumps(payload)

    def ask(directory: Path) -> None:
        done = subprocess.run([python, "-c", script], input=text, cwd=ROOT, capture_output=True, text=True, timeout=900)
        lines = done.stdout.strip().splitlines()
        assert done.returncode == 0 and lines, (
            f"SGLang {version} did not answer (does {python} lack what tools/install-sglang-parser.sh adds?):\n"
            f"{done.stderr[-3000:]}"
        )
        (directory / "answer.json").write_text(lines[-1])

    digest = hashlib.sha256((script + text).encode()).hexdigest()[:16]
    return json.loads((built_once(tmp_path_factory, f"sglang-{version}-{digest}", ask) / "answer.json").read_text())


def _python(version: str) -> str:
    var = env_var(version)
    python = os.environ.get(var)
    if not python:
        not_here(
            f"{var} is not set: no real SGLang {version} here (make one with `bash tools/install-sglang-parser.sh"
            f" DIR {version}` and set {var}=DIR/bin/python, as .ci/run does)"
        )
    assert Path(python).exists(), f"{var}={python}: no such interpreter"
    return python
