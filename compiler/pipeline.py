"""The front end as one call per command: load → validate → model → catalog → resolve."""

from __future__ import annotations

import dataclasses
import typing as t
from pathlib import Path

from sglangc.errors import Finding, key_path, show, sort_findings
from sglangc.load import load
from sglangc.validate import validate

if t.TYPE_CHECKING:
    from sglangc.resolve import Plan


@dataclasses.dataclass(frozen=True)
class Checked:
    """A config after every check: its plan when it has no errors, and all findings (warnings included)."""

    source: str
    plan: Plan | None
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")


def check(path: str | Path) -> Checked:
    from sglangc.catalog import load_catalog, shipped_versions
    from sglangc.errors import ConfigError
    from sglangc.model import build

    name = str(path)
    try:
        doc = load(path)
    except ConfigError as e:
        return Checked(name, None, tuple(e.findings))
    findings = validate(doc.data, name)
    if findings:
        return Checked(name, None, tuple(sort_findings(findings)))
    dep = build(doc)
    catalog = load_catalog(dep.sglang_version)
    if catalog is None:
        message = f"no flag catalog for SGLang {show(dep.sglang_version)}; shipped: {', '.join(shipped_versions())}"
        return Checked(name, None, (Finding(name, key_path("sglang_version"), message),))
    from sglangc.resolve import resolve

    plan, findings = resolve(dep, catalog)
    errors = any(f.severity == "error" for f in findings)
    return Checked(name, None if errors else plan, tuple(sort_findings(findings)))
