"""Plan → artifacts, in memory. Templates hold layout; every value is quoted here, by a filter, for its target."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import typing as t

import jinja2

from sglangc import __version__
from sglangc.emit_templates import DIR as TEMPLATES
from sglangc.errors import GeneratedOutputError, is_forbidden_char
from sglangc.resolve import SOCKET_NAME, LaunchUnit, Plan

GROUP = "sglang"
MANIFEST = "manifest.json"
PIXI_TEMPLATE = "pixi/pixi.toml"
LIB = "lib"
# The runtime's static bash, copied verbatim into DIR/lib: what the generated scripts source.
RUNTIME = ("prelude.sh", "launch.sh", "runner.sh", "install.sh", "download.sh")
DOWNLOADER = "download-models.sh"  # generated only when an instance has a download table


def pixi_template() -> str:
    """The Pixi manifest shipped with sglangc; copied next to the artifacts for the installer's re-lock route."""
    return _package_text(PIXI_TEMPLATE)


def _package_text(relpath: str) -> str:
    return (TEMPLATES / relpath).read_text(encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One file of the output directory: where it goes, its text, whether it is executable, and whether it
    was generated from the config (a static runtime file is copied verbatim)."""

    relpath: str
    text: str
    executable: bool = False
    generated: bool = True

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def mode(self) -> int:
        return 0o755 if self.executable else 0o644


def render(plan: Plan, out_dir: str) -> tuple[Artifact, ...]:
    """Every artifact of a plan, `manifest.json` last."""
    env = _environment()
    context = _context(plan, out_dir)
    artifacts = [
        Artifact(f"launch-{u['name']}.sh", env.get_template("launch.sh.j2").render(context, unit=u), True)
        for u in context["units"]
    ]
    artifacts += [
        Artifact("check-and-run-sglang.sh", env.get_template("check-and-run-sglang.sh.j2").render(context), True),
        Artifact("entry-hook.sh", env.get_template("entry-hook.sh.j2").render(context), True),
        Artifact("install-sglang-offline.sh", env.get_template("install-sglang-offline.sh.j2").render(context), True),
        Artifact("supervisord.conf", env.get_template("supervisord.conf.j2").render(context)),
        Artifact(PIXI_TEMPLATE, pixi_template(), generated=False),
        *(Artifact(f"{LIB}/{name}", _package_text(f"runtime/{name}"), generated=False) for name in RUNTIME),
    ]
    if context["downloads"]:
        artifacts.append(Artifact(DOWNLOADER, env.get_template(f"{DOWNLOADER}.j2").render(context), True))
    artifacts.sort(key=lambda a: a.relpath)
    return (*artifacts, _manifest(plan, artifacts))


def render_conf(plan: Plan, out_dir: str) -> str:
    """supervisord.conf alone (lint renders it again for a plan relocated into a scratch directory)."""
    return _environment().get_template("supervisord.conf.j2").render(_context(plan, out_dir))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(
        shquote=shquote, squote=squote, shjoin=shjoin, sv=sv_value, comment=comment, argv_lines=argv_lines
    )
    return env


def shquote(value: object) -> str:
    return shlex.quote(str(value))


def squote(value: object) -> str:
    """Always single-quoted (shlex.quote leaves `a,b` bare, which shellcheck takes for a mistyped array)."""
    return "'" + str(value).replace("'", "'\"'\"'") + "'"


def shjoin(words: t.Iterable[object]) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def argv_lines(words: t.Iterable[object]) -> list[str]:
    """Quoted words, one line per flag with its values, for a readable bash array."""
    lines: list[list[str]] = []
    for word in map(str, words):
        if word.startswith("--") or not lines:
            lines.append([])
        lines[-1].append(shlex.quote(word))
    return [" ".join(line) for line in lines]


def comment(value: object) -> str:
    """Text for a comment line: control characters escaped, so nothing can end the comment early."""
    return "".join(f"\\x{ord(c):02x}" if is_forbidden_char(c) else c for c in str(value))


def sv_value(value: object) -> str:
    """A value for supervisord.conf: `%` doubled; what its parser would cut or split is a bug upstream."""
    text = str(value)
    if any(c in text for c in "\n\r") or " ;" in text or " #" in text or "\t;" in text or "\t#" in text:
        raise GeneratedOutputError(f"value {text!r} cannot be written into supervisord.conf")
    return text.replace("%", "%%")


def _context(plan: Plan, out_dir: str) -> dict[str, t.Any]:
    dep = plan.deployment
    master = dep.master

    def path(relpath: str) -> str:
        return f"{out_dir.rstrip('/')}/{relpath}"

    by_name = {u.name: u for u in plan.units}
    return {
        "config": dep.config,
        "regenerate": shjoin(["sglangc", "compile", dep.config, "-o", out_dir]),
        "sglangc_version": __version__,
        "lib": path(LIB),
        "runtime_dir": master.runtime_dir,
        "log_dir": plan.log_dir,
        "conf": path("supervisord.conf"),
        "socket": f"{master.runtime_dir}/{SOCKET_NAME}",
        "runner": path("check-and-run-sglang.sh"),
        "installer": path("install-sglang-offline.sh"),
        "pixi_template_dir": path("pixi"),
        "pixi_project_dir": master.pixi_project_dir,
        "pixi_environment": master.pixi_environment,
        "bundle_path": dep.bundle.path,
        "bundle_sha256": dep.bundle.sha256,
        "master_enable": master.enable,
        "start_seconds": master.start_seconds,
        "start_retries": master.start_retries,
        "stop_timeout": master.stop_timeout,
        "ready_timeout": master.ready_timeout,
        "cache_dir": master.cache_dir,
        "settle_seconds": plan.settle_seconds,
        "group": GROUP,
        "downloads": [_download_row(u) for u in plan.units if u.download],
        "downloader": path(DOWNLOADER) if any(u.download for u in plan.units) else "",
        "units": [
            {
                **dataclasses.asdict(u),
                "memory_percent": u.memory_percent,
                "launch": path(f"launch-{u.name}.sh"),
                "waits": [(n, by_name[n].probe_host, by_name[n].port) for n in u.wait_for],
            }
            for u in plan.start_order
        ],
    }


def _download_row(u: LaunchUnit) -> list[object]:
    """One row of download-models.sh's `models`: the instance, its download table and where it lands."""
    d = u.download
    assert d is not None
    return [
        u.name,
        "yes" if u.enabled else "no",
        d.source,
        d.repo,
        d.revision,
        "yes" if d.pinned else "no",
        u.model_path,
        d.token_env or "",
        len(d.include),
        *d.include,
        len(d.exclude),
        *d.exclude,
    ]


def _manifest(plan: Plan, artifacts: list[Artifact]) -> Artifact:
    dep = plan.deployment
    doc = {
        "format": 1,
        "sglangc_version": __version__,
        "config": dep.config,
        "config_sha256": dep.config_sha256,
        "sglang_version": dep.sglang_version,
        "artifacts": [{"path": a.relpath, "sha256": a.sha256, "mode": f"{a.mode:04o}"} for a in artifacts],
        "instances": [
            {
                "name": u.name,
                "enabled": u.enabled,
                "gpu_ids": list(u.gpu_ids),
                "host": u.host,
                "port": u.port,
                "wave": u.wave,
            }
            for u in plan.units
        ],
    }
    return Artifact(MANIFEST, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
