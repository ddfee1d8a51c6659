"""`sglangc compile -o DIR` against a hostile DIR: it never writes or deletes through a symbolic link, never
outside DIR, never what it did not write itself, and never hangs on or reads a special file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = (
    'version = 1\nsglang_version = "0.5.23"\n[master]\npixi_environment = "latest"\ngpu_count = 2\n'
    '[instances.a]\nmodel_path = "/m/a"\n[instances.b]\nmodel_path = "/m/b"\n'
)


def sglangc(*args: str | bytes | os.PathLike, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real command in a subprocess, bounded: a compile that blocks on a FIFO fails here instead of hanging."""
    return subprocess.run(
        [sys.executable, "-m", "sglangc", *map(os.fsdecode, args)],
        cwd=cwd,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def compiled(config: Path, out: Path) -> dict:
    done = sglangc("compile", config, "-o", out)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "manifest.json").read_text())


def planted_manifest(out: Path, *paths: str, sha256: str | None = None) -> None:
    entries = [{"path": p, "sha256": sha256 or _sha256_of(out, p)} for p in paths]
    (out / "manifest.json").write_text(json.dumps({"format": 1, "artifacts": entries}))


def _sha256_of(out: Path, relpath: str) -> str:
    import hashlib

    path = out / relpath
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "0" * 64


def test_pruning_never_follows_a_symlinked_directory(tmp_path: Path, config: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "victim").write_text("keep\n")
    (out / "sub").symlink_to(elsewhere)
    planted_manifest(out, "sub/victim")  # the recorded checksum even matches
    compiled(config, out)
    assert (elsewhere / "victim").read_text() == "keep\n"


def test_writing_never_follows_a_symlinked_directory(tmp_path: Path, config: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "pixi.toml").write_text("theirs\n")
    (out / "pixi").symlink_to(elsewhere)
    done = sglangc("compile", config, "-o", out)
    assert done.returncode == 4, done.stderr
    assert done.stderr.decode().count("\n") == 1 and "is a symbolic link" in done.stderr.decode()
    assert (elsewhere / "pixi.toml").read_text() == "theirs\n"
    assert not (out / "manifest.json").exists()


def test_pruning_removes_only_what_sglangc_wrote(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "out"
    manifest = compiled(config, out)
    assert (out / "launch-b.sh").is_file()
    (out / "notes.txt").write_text("mine\n")  # a file the user put there, then listed in a forged manifest
    records = [*manifest["artifacts"], {"path": "notes.txt", "sha256": "0" * 64}]
    (out / "manifest.json").write_text(json.dumps({**manifest, "artifacts": records}))
    config.write_text(CONFIG.replace('[instances.b]\nmodel_path = "/m/b"\n', ""))
    done = sglangc("compile", config, "-o", out)
    assert done.returncode == 0, done.stderr
    assert not (out / "launch-b.sh").exists(), "written by sglangc and unchanged: pruned"
    assert (out / "notes.txt").read_text() == "mine\n"
    assert "left" in done.stderr.decode() and "notes.txt" in done.stderr.decode()


def test_a_changed_file_of_the_previous_compile_is_left_alone(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "out"
    compiled(config, out)
    (out / "launch-b.sh").write_text("#!/bin/sh\n# edited by hand\n")
    config.write_text(CONFIG.replace('[instances.b]\nmodel_path = "/m/b"\n', ""))
    done = sglangc("compile", config, "-o", out)
    assert done.returncode == 0
    assert (out / "launch-b.sh").read_text().endswith("# edited by hand\n")


@pytest.mark.parametrize("entry", [".", "lib/..", "", "/etc/hostname", "a//b", "../out2/x"])
def test_manifest_entries_outside_dir_or_odd_are_ignored(tmp_path: Path, config: Path, entry: str) -> None:
    out = tmp_path / "out"
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "x").write_text("keep\n")
    out.mkdir()
    planted_manifest(out, entry, sha256="0" * 64)
    compiled(config, out)
    assert (tmp_path / "out2" / "x").read_text() == "keep\n" and out.is_dir()


def test_root_and_empty_output_are_usage_errors(tmp_path: Path, config: Path) -> None:
    for out in ("/", "", "//", "/."):
        done = sglangc("compile", config, "-o", out, cwd=tmp_path)
        assert done.returncode == 2, (out, done.stderr)
        assert done.stderr.decode().count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


@pytest.mark.parametrize("where", ["supervisord.conf", "manifest.json", "lib/runner.sh"])
def test_a_fifo_in_dir_is_replaced_without_being_opened(tmp_path: Path, config: Path, where: str) -> None:
    out = tmp_path / "out"
    (out / "lib").mkdir(parents=True)
    os.mkfifo(out / where)
    compiled(config, out)
    assert (out / where).is_file() and not (out / where).is_fifo()


def test_a_symlink_to_a_device_is_replaced_not_read(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "supervisord.conf").symlink_to("/dev/zero")
    (out / "manifest.json").symlink_to("/dev/zero")
    compiled(config, out)
    assert not (out / "supervisord.conf").is_symlink() and (out / "supervisord.conf").is_file()


def test_a_deeply_nested_old_manifest_is_not_parsed(tmp_path: Path, config: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    compiled(config, out)
    huge = out / "manifest.json"
    huge.write_text('{"artifacts": [' + ",".join(['{"path": "x", "sha256": "0"}'] * 60_000) + "]}")
    assert huge.stat().st_size > 1024 * 1024
    compiled(config, out)


def test_file_names_that_are_not_utf8_are_one_line_errors(tmp_path: Path, config: Path) -> None:
    odd = os.fsencode(tmp_path) + b"/out-\xff"
    done = sglangc("compile", config, "-o", odd)
    assert done.returncode == 2 and done.stderr.count(b"\n") == 1 and b"not valid UTF-8" in done.stderr
    named = os.fsencode(tmp_path) + b"/c\xfe\x1b[31m.toml"
    Path(os.fsdecode(named)).write_text(CONFIG)
    done = sglangc("check", named)
    assert done.returncode == 0, done.stderr
    assert b"\x1b" not in done.stdout + done.stderr and b"\\xfe" in done.stdout
    done = sglangc("plan", "--format", "json", named)
    assert done.returncode == 0 and json.loads(done.stdout)["config"].startswith(os.fsdecode(tmp_path))
    done = sglangc("compile", named, "-o", tmp_path / "o")
    assert done.returncode == 2 and b"not valid UTF-8" in done.stderr


def test_escape_characters_of_a_file_name_never_reach_the_terminal(tmp_path: Path) -> None:
    named = tmp_path / "x\x1b]0;pwned\x07.toml"
    done = sglangc("check", named)
    assert done.returncode == 1
    assert b"\x1b" not in done.stderr and b"\x07" not in done.stderr and b"\\x1b" in done.stderr
