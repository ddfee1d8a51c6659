"""The parallel layouts sglangc plans are the ones SGLang itself accepts at start-up, and the ones it refuses are
refused by SGLang too: SGLang's own resolution (ServerArgs built from the parsed argv, then its resolve and check
steps) runs on CPU for each planned argv, with the real SGLang of each shipped version (support.real_sglang)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sglangc.catalog import default_version, load_catalog, shipped_versions
from sglangc.load import load
from sglangc.model import build
from sglangc.resolve import resolve
from support import ROOT
from support.real_sglang import planned, sglang_resolution

LAYOUT_CASES = sorted((ROOT / "tests" / "cases" / "invalid").glob("layout-*/config.toml"))


@pytest.mark.parametrize("version", shipped_versions())
def test_sglang_resolves_every_planned_argv(version: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every valid case and example of this version: SGLang's start-up resolution accepts its layout."""
    units = planned(version)
    assert units, f"no valid case or example targets SGLang {version}"
    answers = sglang_resolution(tmp_path_factory, version, [list(u.argv) for _, u, _ in units])
    refused = {
        where: answer
        for (where, unit, _), answer in zip(units, answers, strict=True)
        if answer and not _missing_file(answer, unit.argv)
    }
    assert not refused
    assert len(answers) == len(units) and answers.count("") >= len(units) - 1


def _missing_file(answer: str, argv: tuple[str, ...]) -> bool:
    """SGLang found no file the argv names (an SSL key of a case): this machine lacks it, the layout is not at fault."""
    return "not found" in answer and any(f"'{word}'" in answer for word in argv if word.startswith("/"))


def _refused_units(config: Path) -> tuple[str, list[tuple[str, list[str]]]]:
    """The SGLang version of an invalid layout case and the argv sglangc would plan for each instance it refuses."""
    dep = build(load(config), default_version)
    catalog = load_catalog(dep.sglang_version)
    assert catalog is not None
    plan, findings = resolve(dep, catalog)
    refused = {f.key.split(".")[1] for f in findings if f.severity == "error"}
    return dep.sglang_version, [(u.name, list(u.argv)) for u in plan.units if u.name in refused]


@pytest.mark.parametrize("config", LAYOUT_CASES, ids=lambda p: p.parent.name)
def test_sglang_refuses_every_layout_sglangc_refuses(config: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    version, units = _refused_units(config)
    assert units, f"{config}: sglangc refuses no instance"
    answers = sglang_resolution(tmp_path_factory, version, [argv for _, argv in units])
    accepted = [name for (name, _), answer in zip(units, answers, strict=True) if not answer]
    assert not accepted, f"SGLang {version} starts what sglangc refuses: {accepted}"
