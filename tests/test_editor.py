"""Editors (Taplo / Even Better TOML) follow the examples' `#:schema` line and flag mistakes as they are typed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import EXAMPLES, ROOT, not_here
from support.cli import run_cli


@pytest.fixture(scope="module")
def taplo() -> str:
    found = os.environ.get("SGLANGC_TAPLO") or shutil.which("taplo")
    if not found:
        not_here("taplo not found (.ci/run installs @taplo/cli and sets SGLANGC_TAPLO)")
    return found


def _lint(taplo: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [taplo, "lint", *map(str, paths)], capture_output=True, text=True, cwd=paths[0].parent, check=False
    )


@pytest.fixture(scope="module")
def all_examples(taplo: str) -> subprocess.CompletedProcess[str]:
    """One taplo run over every example (a run costs seconds, whatever the number of files)."""
    return _lint(taplo, *EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_pass_taplo(taplo: str, all_examples: subprocess.CompletedProcess[str], example: Path) -> None:
    done = all_examples if all_examples.returncode == 0 else _lint(taplo, example)  # which one fails, if any
    assert done.returncode == 0, done.stdout + done.stderr


def test_taplo_reports_a_typo_through_the_schema_line(taplo: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "schema", tmp_path / "schema")
    (tmp_path / "model-configs").mkdir()
    bad = tmp_path / "model-configs" / "typo.toml"
    text = EXAMPLES[0].read_text().replace("tp_size = ", "tp_szie = ", 1)
    assert "tp_szie" in text
    bad.write_text(text)
    done = _lint(taplo, bad)
    assert done.returncode != 0
    assert "'tp_szie' was unexpected" in done.stdout + done.stderr


@pytest.mark.parametrize("where", ["beside", "installed"])
def test_init_configs_validate_in_the_editor_wherever_they_are(taplo: str, tmp_path: Path, where: str) -> None:
    """`sglangc init -o FILE` writes the schema beside FILE; `sglangc init` (stdout) points at the installed
    package's schema: either way Taplo validates the file through its #:schema line, outside the checkout."""
    config = tmp_path / "deploy" / "cfg.toml"
    config.parent.mkdir()
    if where == "beside":
        assert run_cli("init", "--gpus", "2", "-o", str(config)).exit_code == 0
    else:
        printed = run_cli("init", "--gpus", "2")
        assert printed.exit_code == 0
        config.write_text(printed.stdout)
    assert _lint(taplo, config).returncode == 0
    assert run_cli("check", str(config)).exit_code == 0
    config.write_text(config.read_text().replace("tp_size = ", "tp_szie = ", 1))
    done = _lint(taplo, config)
    assert done.returncode != 0
    assert "'tp_szie' was unexpected" in done.stdout + done.stderr
