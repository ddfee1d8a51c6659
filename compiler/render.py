"""Plan → artifacts, in memory. Templates hold layout; every value is quoted here, by a filter, for its target."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shlex
import typing as t

import jinja2

from sglangc import __version__
from sglangc.emit_templates import DIR as TEMPLATES
from sglangc.errors import GeneratedOutputError, is_forbidden_char
from sglangc.resolve import GATEWAY_NAME, SOCKET_NAME, LaunchUnit, Plan

GROUP = "sglang"
MANIFEST = "manifest.json"
PIXI_TEMPLATE = "pixi/pixi.toml"
LIB = "lib"
# The runtime's static bash, copied verbatim into DIR/lib: what the generated scripts source.
RUNTIME = ("prelude.sh", "launch.sh", "runner.sh", "install.sh", "download.sh", "sglangc_supervisor.py")
GATEWAY_RUNTIME = ("gateway.sh", "gateway.py")  # with [gateway] only
DOWNLOADER = "download-models.sh"  # generated only when an instance has a download table
# What a running server was started from, besides its launch script and program section.
LAUNCH_RUNTIME = ("prelude.sh", "launch.sh")
GATEWAY_LAUNCH_RUNTIME = ("prelude.sh", *GATEWAY_RUNTIME)


def pixi_template() -> str:
    """The Pixi manifest shipped with sglangc; copied next to the artifacts for the installer's re-lock route."""
    return _package_text(PIXI_TEMPLATE)


@functools.cache
def _package_text(relpath: str) -> str:
    """A file shipped in the package, read once per process (each unit's revision hashes the runtime files)."""
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
    if plan.gateway:
        artifacts.append(Artifact("launch-gateway.sh", env.get_template("launch-gateway.sh.j2").render(context), True))
    conf = env.get_template("supervisord.conf.j2").render(context)
    launches = {a.relpath: a.text for a in artifacts}
    revisions = {
        u["name"]: _revision(launches[f"launch-{u['name']}.sh"], conf, u["program"], LAUNCH_RUNTIME)
        for u in context["units"]
    }
    for u in context["units"]:
        u["revision"] = revisions[u["name"]]
    if plan.gateway:
        gateway = context["gateway"]
        gateway["revision"] = _revision(launches["launch-gateway.sh"], conf, gateway["program"], GATEWAY_LAUNCH_RUNTIME)
        revisions[gateway["name"]] = gateway["revision"]
        artifacts += [
            Artifact(f"{LIB}/{name}", _package_text(f"runtime/{name}"), generated=False) for name in GATEWAY_RUNTIME
        ]
    artifacts += [
        Artifact("check-and-run-sglang.sh", env.get_template("check-and-run-sglang.sh.j2").render(context), True),
        Artifact("entry-hook.sh", env.get_template("entry-hook.sh.j2").render(context), True),
        Artifact("install-sglang-offline.sh", env.get_template("install-sglang-offline.sh.j2").render(context), True),
        Artifact("supervisord.conf", conf),
        Artifact(PIXI_TEMPLATE, pixi_template(), generated=False),
        *(Artifact(f"{LIB}/{name}", _package_text(f"runtime/{name}"), generated=False) for name in RUNTIME),
    ]
    if context["downloads"]:
        artifacts.append(Artifact(DOWNLOADER, env.get_template(f"{DOWNLOADER}.j2").render(context), True))
    artifacts.sort(key=lambda a: a.relpath)
    return (*artifacts, _manifest(plan, artifacts, revisions))


def _revision(launch: str, conf: str, program: str, runtime: tuple[str, ...]) -> str:
    """A hash of what a server (or the gateway) is started from: its launch script, the runtime that script
    sources and its program section in supervisord.conf. `reload` restarts it when this changes and leaves it
    running otherwise."""
    section = conf.split(f"\n[program:{program}]\n", 1)[1].split("\n\n[", 1)[0]
    parts = [launch, section, *(_package_text(f"runtime/{name}") for name in runtime)]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]


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
        "regenerate": shjoin(
            [
                "sglangc",
                "compile",
                dep.config,
                *(["--node-rank", str(plan.node_rank)] if plan.node_rank else []),
                "-o",
                out_dir,
            ]
        ),
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
                "probe_envs": [(u.name, u.probe_env)] if u.probe_env else [],
            }
            for u in plan.start_order
        ],
        "gateway": plan.gateway
        and {
            **dataclasses.asdict(plan.gateway),
            "name": plan.gateway.name,
            "launch": path("launch-gateway.sh"),
            "secret_envs": [e for e in (plan.gateway.api_key_env, plan.gateway.control_plane_api_key_env) if e],
        },
    }


def manifest_revisions(artifacts: t.Iterable[Artifact]) -> dict[str, str]:
    """instance → revision, as the manifest among `artifacts` records them."""
    manifest = next(a for a in artifacts if a.relpath == MANIFEST)
    doc = json.loads(manifest.text)
    units = [*doc["instances"], *([{"name": GATEWAY_NAME, **doc["gateway"]}] if doc.get("gateway") else [])]
    return {u["name"]: u["revision"] for u in units if u.get("revision")}


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


def _manifest(plan: Plan, artifacts: list[Artifact], revisions: dict[str, str] | None = None) -> Artifact:
    """manifest.json: the artifacts' checksums, and per instance where it runs (its revision: bash output only)."""
    revisions = revisions or {}
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
                "revision": revisions.get(u.name),
            }
            for u in plan.units
        ],
    }
    if plan.gateway:
        doc["gateway"] = {"host": plan.gateway.host, "port": plan.gateway.port, "revision": revisions.get(GATEWAY_NAME)}
    return Artifact(MANIFEST, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
