"""Bad input through the CLI: every unreadable or undecodable file is one clear line naming it, exit 1, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from support.cli import run_cli

VALID = 'version = 1\nsglang_version = "0.5.23"\n[master]\npixi_environment = "latest"\n[instances.a]\nmodel_path = "/llm-models/a"\ngpu_ids = [0]\n'
DEPTH = 5000


def one_line(stderr: str, name: str) -> str:
    """The single finding line, checked to name the file."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"{name}:"), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


BAD_FILES: dict[str, tuple[t.Callable[[Path], object], str]] = {
    "empty": (lambda p: p.write_bytes(b""), "file is empty"),
    "whitespace": (lambda p: p.write_bytes(b"  \n\t\r\n   \n"), "file is empty"),
    "comments-only": (lambda p: p.write_text("# nothing here\n"), "instances: required key is missing"),
    "non-utf8": (
        lambda p: p.write_bytes(b"version = 1\n# caf\xe9\n"),
        "config.toml:2:6: not valid UTF-8 (byte 17: b'\\xe9'); save the file as UTF-8",
    ),
    "bom": (
        lambda p: p.write_bytes(b"\xef\xbb\xbf" + VALID.encode()),
        "config.toml:1:1: starts with a byte order mark (BOM); save the file as UTF-8 without BOM",
    ),
    "latin1-string": (lambda p: p.write_bytes(b'[instances.a]\nmodel_path = "/m/\xff"\n'), "not valid UTF-8"),
    "ten-megabytes": (lambda p: p.write_bytes(b"# " + b"x" * (10 * 1024 * 1024) + b"\n"), "a config may be at most"),
    "nul-bytes": (lambda p: p.write_bytes(b"\0" * 4096), "config.toml:1:1: contains a NUL character: not a text file"),
    "nul-in-value": (lambda p: p.write_bytes(b"version = 1\x00\n"), "config.toml:1:12: contains a NUL character"),
    "binary": (lambda p: p.write_bytes(bytes(range(256)) * 4), "not valid UTF-8"),
    "deep-arrays": (lambda p: p.write_text("x = " + "[" * DEPTH + "]" * DEPTH + "\n"), "nested too deeply"),
    "deep-inline-tables": (
        lambda p: p.write_text("x = " + "{a = " * DEPTH + "1" + "}" * DEPTH + "\n"),
        "nested too deeply",
    ),
    "deep-table-headers": (lambda p: p.write_text("[" + ".".join(["t"] * DEPTH) + "]\nx = 1\n"), "nested too deeply"),
    "deep-dotted-keys": (lambda p: p.write_text(".".join(["k"] * DEPTH) + " = 1\n"), "nested too deeply"),
    "unclosed-deep-arrays": (lambda p: p.write_text("x = " + "[" * DEPTH + "\n"), "config.toml"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_is_one_line(kind: str, tmp_path: Path) -> None:
    make, expected = BAD_FILES[kind]
    make(tmp_path / "config.toml")
    result = run_cli("check", "config.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert expected in one_line(result.stderr, "config.toml")


def test_missing_file(tmp_path: Path) -> None:
    result = run_cli("check", "nope.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert one_line(result.stderr, "nope.toml") == "nope.toml: no such file"


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    result = run_cli("check", "configs", cwd=tmp_path)
    assert result.exit_code == 1
    assert one_line(result.stderr, "configs") == "configs: is a directory, not a config file"


def test_empty_file_message(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("")
    result = run_cli("check", "config.toml", cwd=tmp_path)
    assert result.stderr == (
        "config.toml: file is empty; a config needs at least `version = 1` and one [instances.<name>] table\n"
    )


def test_path_is_reported_as_given(tmp_path: Path) -> None:
    sub = tmp_path / "a dir"
    sub.mkdir()
    (sub / "x.toml").write_text("x = [")
    result = run_cli("check", "a dir/x.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert one_line(result.stderr, "a dir/x.toml").startswith("a dir/x.toml:1:")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text(VALID)
    path.chmod(0)
    real_open = os.open

    def open_as_unprivileged(path: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        # Tests run as root in CI, where mode 0 does not stop reading: fail the way another user would.
        if os.fspath(path).endswith("config.toml"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_as_unprivileged)
    result = run_cli("check", "config.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert one_line(result.stderr, "config.toml") == "config.toml: permission denied"


def test_check_without_argument_is_usage() -> None:
    result = run_cli("check")
    assert result.exit_code == 2
    assert "Missing argument" in result.stderr


def test_unknown_option_is_usage(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(VALID)
    result = run_cli("check", "--no-such-option", "config.toml", cwd=tmp_path)
    assert result.exit_code == 2


def test_several_configs_one_bad(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(VALID)
    (tmp_path / "bad.toml").write_text(VALID.replace("gpu_ids = [0]", "gpu_ids = [0]\ntp_szie = 2"))
    (tmp_path / "empty.toml").write_text("")
    result = run_cli("check", "good.toml", "bad.toml", "empty.toml", "missing.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'bad.toml: instances.a.tp_szie: unknown key; did you mean "tp_size"?',
        "empty.toml: file is empty; a config needs at least `version = 1` and one [instances.<name>] table",
        "missing.toml: no such file",
    ]
    assert result.stdout.startswith("good.toml: ok: 1 instance(s)")


def test_several_configs_all_good(tmp_path: Path) -> None:
    (tmp_path / "one.toml").write_text(VALID)
    (tmp_path / "two.toml").write_text(VALID)
    result = run_cli("check", "one.toml", "two.toml", cwd=tmp_path)
    assert result.exit_code == 0
    assert [line.split(":")[0] for line in result.stdout.splitlines() if not line.startswith(" ")] == [
        "one.toml",
        "two.toml",
    ]


def test_plan_of_bad_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes(b"\xff\xfe")
    result = run_cli("plan", "config.toml", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.stdout == ""
    one_line(result.stderr, "config.toml")


@pytest.mark.parametrize("kind", ["deep-arrays", "deep-inline-tables", "ten-megabytes", "nul-bytes"])
def test_real_process_never_tracebacks(kind: str, tmp_path: Path) -> None:
    """The installed entry point (stack, exception hook and all) on the harshest inputs."""
    BAD_FILES[kind][0](tmp_path / "config.toml")
    proc = subprocess.run(
        [sys.executable, "-m", "sglangc", "check", "config.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    one_line(proc.stderr, "config.toml")


def test_locate_finds_keys_in_tables_dotted_keys_and_inline_tables() -> None:
    from sglangc.load import locate

    raw = (
        b'version = 1\n[master]\ngpu_count = "8"\n[instances.a]\nmodel_path = "/m"\n'
        b'server_args = { "context-length" = 1, tp = 2 }\n[instances.b]\nenv.HF_TOKEN = "x"\ngpu_ids = [0, 1]\n'
    )
    assert locate(raw, "version") == (1, 1)
    assert locate(raw, "master.gpu_count") == (3, 1)
    assert locate(raw, "instances.a.server_args.context-length") == (6, 18)  # the name inside its quotes
    assert locate(raw, "instances.a.server_args.tp") == (6, 39)
    assert locate(raw, "instances.b.env.HF_TOKEN") == (8, 5)
    assert locate(raw, "instances.b.gpu_ids[1]") == (9, 1)
    assert locate(raw, "instances.b.port") == (7, 1)  # not written: the table it belongs in
    assert locate(raw, "instances.zz") == (0, 0)
    assert locate(raw, 'instances."my model"') == (0, 0)  # quoted key paths are not looked for
    assert locate(b"\xff\xfe", "version") == (0, 0)
