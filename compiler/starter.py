"""The starter config `sglangc init` writes: commented, and valid as written."""

from __future__ import annotations

import json
import os

from sglangc import schema as schema_package

SCHEMA_NAME = "sglang-config.schema.json"
PLACEHOLDER_MODEL = "/llm-models/Qwen3-8B"


def installed_schema() -> str:
    """The JSON Schema shipped inside the installed sglangc package (an absolute path)."""
    return os.path.join(os.path.dirname(os.path.abspath(schema_package.__file__)), SCHEMA_NAME)


def starter(gpus: int | None, model: str | None, schema: str) -> str:
    """A config for one server on `gpus` GPUs (one GPU when None) of `model` (a placeholder when None)."""
    model_path = json.dumps(model or PLACEHOLDER_MODEL, ensure_ascii=False)
    count = gpus or 1
    lines = [
        f"#:schema {schema}",
        "# sglangc config: `sglangc check` this file, `sglangc plan` shows what would run, `sglangc compile` writes it.",
        "# Every key: `sglangc schema --format markdown` (the config reference).",
        "version = 1",
        "",
        "[master]",
        _line(f"gpu_count = {count}", 'GPUs the container has; lets gpu_ids = "auto" place instances'),
        _line(
            '# pixi_environment = "latest"',
            'the SGLang installed: "default" (0.5.10.post1, CUDA 12), "latest" (0.5.23)',
        ),
        _line('# log_dir = "/tmp"', "logs: <log_dir>/sglangc/sglang-server-<name>.log"),
        "",
        _line("[instances.main]", "one SGLang server; add [instances.<name>] tables for more"),
        _line(f"model_path = {model_path}", "the model directory (or hub id)"),
        _line(f"tp_size = {count}", "tensor parallel: GPUs one copy of the model is split over"),
        _line("# gpu_ids = [0]", 'default "auto": free GPUs of master.gpu_count'),
        _line('# served_model_name = "my-model"', "the name clients send (default: model_path)"),
        _line('# host = "0.0.0.0"', "default 127.0.0.1; 0.0.0.0 for a port mapping (then set api_key_env)"),
        _line("# port = 30000", "default: master.base_port, then the next free one"),
        _line('# api_key_env = "SGLANG_API_KEY"', "the variable holding the API key, read at launch"),
        _line("# mem_fraction_static = 0.85", "share of each GPU's memory for weights and KV cache"),
        '# reasoning_parser = "qwen3"',
        '# tool_call_parser = "qwen25"',
        '# env = { HF_HUB_OFFLINE = "1" }',
        "# Any other SGLang flag, without the leading --, checked against the SGLang version in use:",
        "# server_args = { context-length = 32768, enable-metrics = true }",
    ]
    return "\n".join(lines) + "\n"


def _line(code: str, comment: str) -> str:
    return f"{code:<36} # {comment}"
