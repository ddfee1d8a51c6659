"""Plan → artifacts, in memory. Templates hold layout; every value is quoted here, by a filter, for its target."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import typing as t
from importlib import resources

import jinja2

from sglangc import __version__
from sglangc.errors import InternalError, is_forbidden_char
from sglangc.resolve import WILDCARD_PROBE, LaunchUnit, Plan, secret_file

PROGRAM_PREFIX = "sglang-"
GROUP = "sglang"
SOCKET = "supervisor.sock"
MANIFEST = "manifest.json"
PIXI_TEMPLATE = "pixi/pixi.toml"


def pixi_template() -> str:
    """The Pixi manifest shipped with sglangc; copied next to the artifacts for the installer's re-lock route."""
    return resources.files("sglangc.emit_templates").joinpath(PIXI_TEMPLATE).read_text(encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One file of the output directory: where it goes, its text and whether it is executable."""

    relpath: str
    text: str
    executable: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def mode(self) -> int:
        return 0o755 if self.executable else 0o644


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where things live at run time: the output directory and the runtime paths compiled into the scripts."""

    out_dir: str
    runtime_dir: str
    log_dir: str

    def path(self, relpath: str) -> str:
        return f"{self.out_dir.rstrip('/')}/{relpath}"


def render(plan: Plan, out_dir: str, *, runtime_dir: str | None = None, log_dir: str | None = None) -> tuple[Artifact, ...]:
    """Every artifact of a plan, `manifest.json` last. `runtime_dir`/`log_dir` override the config (lint uses this)."""
    master = plan.deployment.master
    layout = Layout(out_dir, runtime_dir or master.runtime_dir, log_dir or master.log_dir)
    env = _environment()
    context = _context(plan, layout)
    artifacts = [
        Artifact(f"launch-{u['name']}.sh", env.get_template("launch.sh.j2").render(context, unit=u), True)
        for u in context["units"]
    ]
    artifacts += [
        Artifact("check-and-run-sglang.sh", env.get_template("check-and-run-sglang.sh.j2").render(context), True),
        Artifact("entry-hook.sh", env.get_template("entry-hook.sh.j2").render(context), True),
        Artifact("install-sglang-offline.sh", env.get_template("install-sglang-offline.sh.j2").render(context), True),
        Artifact("supervisord.conf", env.get_template("supervisord.conf.j2").render(context)),
        Artifact(PIXI_TEMPLATE, pixi_template()),
    ]
    artifacts.sort(key=lambda a: a.relpath)
    return (*artifacts, _manifest(plan, artifacts))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("sglangc.emit_templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(shquote=shquote, shjoin=shjoin, sv=sv_value, comment=comment)
    return env


def shquote(value: object) -> str:
    return shlex.quote(str(value))


def shjoin(words: t.Iterable[object]) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def comment(value: object) -> str:
    """Text for a comment line: control characters escaped, so nothing can end the comment early."""
    return "".join(f"\\x{ord(c):02x}" if is_forbidden_char(c) else c for c in str(value))


def sv_value(value: object) -> str:
    """A value for supervisord.conf: `%` doubled; what its parser would cut or split is a bug upstream."""
    text = str(value)
    if any(c in text for c in "\n\r") or " ;" in text or " #" in text or "\t;" in text or "\t#" in text:
        raise InternalError(f"value {text!r} cannot be written into supervisord.conf")
    return text.replace("%", "%%")


def _context(plan: Plan, layout: Layout) -> dict[str, t.Any]:
    dep = plan.deployment
    master = dep.master
    order = sorted(plan.enabled, key=lambda u: (u.wave or 0, u.name))
    by_name = {u.name: u for u in order}
    return {
        "config": dep.source,
        "regenerate": shjoin(["sglangc", "compile", dep.source, "-o", layout.out_dir]),
        "out_dir": layout.out_dir,
        "runtime_dir": layout.runtime_dir,
        "log_dir": layout.log_dir,
        "conf": layout.path("supervisord.conf"),
        "socket": f"{layout.runtime_dir}/{SOCKET}",
        "runner": layout.path("check-and-run-sglang.sh"),
        "installer": layout.path("install-sglang-offline.sh"),
        "pixi_template_dir": layout.path("pixi"),
        "sglangc_version": __version__,
        "pixi_project_dir": master.pixi_project_dir,
        "pixi_environment": master.pixi_environment,
        "bundle_path": dep.bundle.path,
        "bundle_sha256": dep.bundle.sha256,
        "master_enable": master.enable,
        "start_seconds": master.start_seconds,
        "start_retries": master.start_retries,
        "stop_timeout": master.stop_timeout,
        "ready_timeout": master.ready_timeout,
        "group": GROUP,
        "units": [_unit(plan, layout, u, by_name) for u in order],
    }


def _unit(plan: Plan, layout: Layout, u: LaunchUnit, by_name: dict[str, LaunchUnit]) -> dict[str, t.Any]:
    exports = [("CUDA_VISIBLE_DEVICES", ",".join(map(str, u.gpu_ids))), *u.env]
    if "PYTHONUNBUFFERED" not in dict(u.env):
        exports.append(("PYTHONUNBUFFERED", "1"))  # server logs reach the log file as they happen
    return {
        "name": u.name,
        "program": PROGRAM_PREFIX + u.name,
        "launch": layout.path(f"launch-{u.name}.sh"),
        "host": u.host,
        "probe_host": probe_host(u.host),
        "port": u.port,
        "wave": u.wave,
        "priority": 100 + 10 * (u.wave or 0),
        "gpu_ids": list(u.gpu_ids),
        "served_model_name": u.served_model_name,
        "model_path": u.model_path,
        "log": f"{layout.log_dir}/sglang-server-{u.name}.log",
        "pid_file": f"{layout.runtime_dir}/pids/{u.name}.pid",
        "secret_file": secret_file(plan.deployment, u.name) if u.api_key_env else None,
        "api_key_env": u.api_key_env,
        "exports": exports,
        "dry_run_exports": [f"{k}={shlex.quote(v)}" for k, v in exports],
        "argv": list(u.argv),
        "wait_for": [
            {"name": n, "probe_host": probe_host(by_name[n].host), "port": by_name[n].port} for n in u.wait_for
        ],
    }


def probe_host(host: str) -> str:
    """The address to probe a server on: a wildcard bind is reached over loopback."""
    return WILDCARD_PROBE.get(host, host)


def _manifest(plan: Plan, artifacts: list[Artifact]) -> Artifact:
    dep = plan.deployment
    doc = {
        "format": 1,
        "sglangc_version": __version__,
        "config": dep.source,
        "config_sha256": dep.config_sha256,
        "sglang_version": dep.sglang_version,
        "artifacts": [{"path": a.relpath, "sha256": a.sha256, "mode": f"{a.mode:04o}"} for a in artifacts],
        "instances": [
            {"name": u.name, "enabled": u.enabled, "gpu_ids": list(u.gpu_ids), "host": u.host, "port": u.port,
             "wave": u.wave}
            for u in plan.units
        ],
    }
    return Artifact(MANIFEST, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
