"""The configs the docs show pass `sglangc check`: every whole config in a toml block of README.md and docs/, and
every `server_args` example of docs/config-toml.md's table, under each shipped SGLang version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sglangc.catalog import load_catalog, shipped_versions, template_versions
from support import ROOT
from support.cli import run_cli

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    (doc, text)
    for doc in DOCS
    for text in re.findall(r"^```toml\n(.*?)^```$", doc.read_text(encoding="utf-8"), flags=re.S | re.M)
    if "version = 1" in text and "[instances." in text
]
# `| `flag = value` | SGLang gets | checked |` rows of the server_args table
ROWS = re.findall(r"^\| `([a-z0-9-]+ = [^`]+)` ", (ROOT / "docs" / "config-toml.md").read_text(), flags=re.M)


@pytest.mark.parametrize("doc, text", BLOCKS, ids=lambda v: v.name if isinstance(v, Path) else "")
def test_whole_configs_in_the_docs_check(doc: Path, text: str, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    done = run_cli("check", "config.toml", cwd=tmp_path)
    assert done.exit_code == 0, f"{doc.name}:\n{done.stderr}"


@pytest.mark.parametrize("version", shipped_versions())
def test_server_args_examples_in_the_docs_check(version: str, tmp_path: Path) -> None:
    """Each example whose flag this version has passes (the table shows 0.5.23's --x/--no-x example too)."""
    assert any(row.startswith("json-model-override-args = {") for row in ROWS), ROWS
    assert all(any(_flag(row) in _options(v) for v in shipped_versions()) for row in ROWS), ROWS
    environment = next(e for e, v in template_versions().items() if v == version)
    rows = [row for row in ROWS if _flag(row) in _options(version)]
    assert len(rows) >= len(ROWS) - 2, rows
    for row in rows:
        (tmp_path / "config.toml").write_text(
            f'version = 1\n[master]\npixi_environment = "{environment}"\n'
            f'[instances.a]\nmodel_path = "/m"\ngpu_ids = [0]\n[instances.a.server_args]\n{row}\n'
        )
        done = run_cli("check", "config.toml", cwd=tmp_path)
        assert done.exit_code == 0, f"{row}: {done.stderr}"


def _flag(row: str) -> str:
    return row.split(" = ", 1)[0]


def _options(version: str) -> dict[str, object]:
    catalog = load_catalog(version)
    assert catalog is not None
    return catalog.options
