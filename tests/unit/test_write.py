"""`sglangc compile` writing into DIR: atomic files, manifest last, stale files pruned, nothing else touched."""

from __future__ import annotations

import json
from pathlib import Path

from support import EXAMPLES
from support.cli import run_cli

CONFIG_TWO = """version = 1
sglang_version = "0.5.23"
[master]
pixi_environment = "latest"
gpu_count = 2
[instances.a]
model_path = "/m/a"
[instances.b]
model_path = "/m/b"
"""


def _compile(config: Path, out: Path, *extra: str):
    return run_cli("compile", str(config), "-o", str(out), *extra)


def test_compile_writes_every_artifact_listed_in_the_manifest(tmp_path: Path) -> None:
    result = _compile(EXAMPLES[0], tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    listed = {a["path"] for a in manifest["artifacts"]}
    on_disk = {str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert on_disk == listed | {"manifest.json"}
    for artifact in manifest["artifacts"]:
        path = tmp_path / "out" / artifact["path"]
        assert f"{path.stat().st_mode & 0o777:04o}" == artifact["mode"]
    assert {i["name"] for i in manifest["instances"]} == {"flash-a", "flash-b"}
    assert "files (" in result.stdout and "GPUs 0-7" in result.stdout


def test_recompile_prunes_stale_files_and_leaves_others_alone(tmp_path: Path, write_config) -> None:
    out = tmp_path / "out"
    two = write_config(CONFIG_TWO)
    assert _compile(two, out).exit_code == 0
    (out / "notes.txt").write_text("mine\n")
    assert (out / "launch-b.sh").exists()
    unchanged = (out / "launch-a.sh").stat().st_mtime_ns
    one = write_config(CONFIG_TWO.replace('[instances.b]\nmodel_path = "/m/b"\n', ""))  # same file, b removed
    result = _compile(one, out)
    assert result.exit_code == 0, result.stderr
    assert "1 removed" in result.stdout
    assert not (out / "launch-b.sh").exists()
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "launch-a.sh").stat().st_mtime_ns == unchanged  # same bytes: not rewritten
    assert not [p for p in out.iterdir() if ".sglangc-tmp-" in p.name]


def test_check_mode_writes_nothing_and_reports_changes(tmp_path: Path, write_config) -> None:
    out = tmp_path / "out"
    two = write_config(CONFIG_TWO)
    first = _compile(two, out, "--check")
    assert first.exit_code == 1
    assert f"would write {out}/launch-a.sh" in first.stdout
    assert not out.exists()
    assert _compile(two, out).exit_code == 0
    again = _compile(two, out, "--check")
    assert again.exit_code == 0 and "up to date" in again.stdout
    one = write_config(CONFIG_TWO.replace('[instances.b]\nmodel_path = "/m/b"\n', ""), "one.toml")
    changed = _compile(one, out, "--check")
    assert changed.exit_code == 1
    assert f"would remove {out}/launch-b.sh" in changed.stdout
    assert (out / "launch-b.sh").exists()


def test_a_bad_config_writes_nothing(tmp_path: Path, write_config) -> None:
    out = tmp_path / "out"
    bad = write_config(CONFIG_TWO.replace("/m/b", '/m/b"\ntp_szie = 2\n#'))
    result = _compile(bad, out)
    assert result.exit_code == 1
    assert "tp_szie" in result.stderr
    assert not out.exists()


def test_unwritable_output_is_one_line(tmp_path: Path, write_config) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    result = _compile(write_config(CONFIG_TWO), blocker / "out")
    assert result.exit_code == 4  # the output directory, not the config
    assert result.stderr.count("\n") == 1 and "Not a directory" in result.stderr


def test_output_path_supervisord_cannot_take_is_usage(tmp_path: Path, write_config) -> None:
    result = _compile(write_config(CONFIG_TWO), tmp_path / "a ;b")
    assert result.exit_code == 2
    assert "supervisord cannot take this path" in result.stderr


def test_previous_manifest_cannot_make_compile_delete_outside_dir(tmp_path: Path, write_config) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    (out / "manifest.json").write_text(json.dumps({"artifacts": [{"path": "../victim.txt"}, {"path": str(victim)}]}))
    assert _compile(write_config(CONFIG_TWO), out).exit_code == 0
    assert victim.read_text() == "keep\n"
