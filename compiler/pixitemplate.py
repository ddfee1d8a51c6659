"""The Pixi template (`emit_templates/pixi/pixi.toml`, or a user's copy): its environments, features merged.

Read by `sglangc bundle` (what to lock, pack or download) and by the checks (which SGLang each environment pins).
"""

from __future__ import annotations

import dataclasses
import os
import typing as t
from pathlib import Path

from sglangc.errors import UsageError

PLATFORM = "linux-64"


@dataclasses.dataclass(frozen=True)
class Environment:
    """One environment of the template, its features merged (default feature first, later features win)."""

    name: str
    conda: dict[str, t.Any]  # conda dependencies: name -> MatchSpec string or table
    pypi: dict[str, t.Any]  # PyPI dependencies: name -> PEP 440 string or table
    pypi_options: dict[str, t.Any]  # index-url, extra-index-urls, find-links (concatenated)


@dataclasses.dataclass(frozen=True)
class Template:
    directory: Path | None  # None: the packaged template
    text: str
    manifest: dict[str, t.Any]

    @classmethod
    def load(cls, directory: Path | None) -> Template:
        from sglangc.load import tomllib

        if directory is None:
            text = packaged_template().joinpath("pixi.toml").read_text("utf-8")
            where = "the packaged template"
        else:
            directory = Path(os.path.abspath(directory))
            manifest_path = directory / "pixi.toml"
            if not manifest_path.is_file():
                raise UsageError(f"--template {directory}: no pixi.toml in it")
            text = manifest_path.read_text("utf-8")
            where = str(manifest_path)
        try:
            manifest = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"{where}: not valid TOML: {e}") from None
        return cls(directory=directory, text=text, manifest=manifest)

    @property
    def where(self) -> str:
        return str(self.directory / "pixi.toml") if self.directory else "the packaged template"

    def environments(self) -> list[str]:
        return sorted({"default", *self.manifest.get("environments", {})})

    def environment(self, name: str) -> Environment:
        m = self.manifest
        envs = m.get("environments", {})
        if name not in envs and name != "default":
            raise UsageError(f"--environment {name!r}: {self.where} has {', '.join(self.environments())}")
        spec = envs.get(name, [])
        features, no_default = (
            (spec, False)
            if isinstance(spec, list)
            else (spec.get("features", []), bool(spec.get("no-default-feature", False)))
        )
        tables = [] if no_default else [m]
        for feature in features:
            if feature not in m.get("feature", {}):
                raise UsageError(f"{self.where}: environment {name!r} names the unknown feature {feature!r}")
            tables.append(m["feature"][feature])
        platforms = [
            p if isinstance(p, str) else p.get("platform")
            for p in m.get("workspace", m.get("project", {})).get("platforms", [])
        ]
        if PLATFORM not in platforms:
            raise UsageError(
                f"{self.where}: workspace.platforms must include {PLATFORM} (it has "
                f"{', '.join(map(str, platforms)) or 'none'})"
            )
        conda: dict[str, t.Any] = {}
        pypi: dict[str, t.Any] = {}
        options: dict[str, t.Any] = {}
        _merge_options(options, m.get("workspace", m.get("project", {})).get("pypi-options", {}))
        for table in tables:
            for part in [table, *(table.get("target", {}).get(sel, {}) for sel in ("unix", "linux", PLATFORM))]:
                conda.update(part.get("dependencies", {}))
                pypi.update(part.get("pypi-dependencies", {}))
                _merge_options(options, part.get("pypi-options", {}))
        return Environment(name=name, conda=conda, pypi=pypi, pypi_options=options)


def packaged_template() -> Path:
    from sglangc.emit_templates import DIR

    return DIR / "pixi"


def _merge_options(into: dict[str, t.Any], options: dict[str, t.Any]) -> None:
    for key, value in options.items():
        if isinstance(value, list):
            into[key] = [*into.get(key, []), *value]
        else:
            into[key] = value
