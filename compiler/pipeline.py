"""One call per command: `check` (load → validate → model → catalog → resolve) and `compile_config`
(check → render → lint → write)."""

from __future__ import annotations

import dataclasses
import os
import typing as t
from pathlib import Path

from sglangc.errors import MAX_FINDINGS, Finding, key_path, show, sort_findings
from sglangc.load import SourceDoc, load
from sglangc.validate import validate

if t.TYPE_CHECKING:
    from sglangc.render import Artifact
    from sglangc.resolve import Plan
    from sglangc.write import Changes


@dataclasses.dataclass(frozen=True)
class Checked:
    """A config after every check: its plan when it has no errors, and all findings (warnings included)."""

    config: str  # the config file as named on the command line
    plan: Plan | None
    findings: tuple[Finding, ...]
    raw: bytes = b""  # the config's bytes (to locate findings in it), empty when it could not be read

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")


def check(path: str | Path, node_rank: int = 0) -> Checked:
    """Every check of one config; the plan is node `node_rank`'s part (0 for a config of one machine)."""
    from sglangc.catalog import chosen_catalog, default_version, shipped_versions
    from sglangc.errors import ConfigError
    from sglangc.model import build

    config = str(path)
    try:
        doc = load(path)
    except ConfigError as e:
        return Checked(config, None, tuple(e.findings))
    config, raw = doc.config, doc.raw  # `-` is read from stdin and named <stdin>
    findings = validate(doc.data, config)
    if findings:
        findings = _flags_out_of_place(doc.data, findings)
        clean = _without_broken_instances(doc, findings)
        if clean is None:
            findings += _clean_instances(doc.data, findings, config)
            return Checked(config, None, tuple(sort_findings(findings)), raw)
        doc = clean
    dep = build(doc, default_version)
    catalog = chosen_catalog(doc.data)
    if catalog is None:
        message = f"no flag catalog for SGLang {show(dep.sglang_version)}; shipped: {', '.join(shipped_versions())}"
        return Checked(
            config, None, tuple(sort_findings([*findings, Finding(config, key_path("sglang_version"), message)])), raw
        )
    findings += _version_agreement(doc.data, dep, config)
    dep, yaml_findings = _with_sglang_configs(dep, path)
    findings += yaml_findings
    from sglangc.resolve import resolve

    plan, more = resolve(dep, catalog, node_rank)
    findings += more
    errors = any(f.severity == "error" for f in findings)
    return Checked(config, None if errors else plan, tuple(sort_findings(findings)), raw)


def _flags_out_of_place(data: dict[str, t.Any], shape: list[Finding]) -> list[Finding]:
    """An unknown instance key that is an SGLang flag (`context_length`, `context-length`) says where it goes."""
    from sglangc.catalog import chosen_catalog

    instances, catalog = data.get("instances"), chosen_catalog(data)
    if catalog is None or not isinstance(instances, dict):
        return shape
    where = {
        key_path("instances", name, key): key
        for name, raw in instances.items()
        if isinstance(raw, dict)
        for key in raw
        if isinstance(key, str)
    }
    out = []
    for finding in shape:
        flag = where.get(finding.key, "").replace("_", "-")
        option = catalog.options.get(flag) if flag and finding.message.startswith("unknown key") else None
        if option is not None and not option.owner:
            message = f"SGLang flags go in server_args: {key_path('server_args', flag)}"
            finding = dataclasses.replace(finding, message=message)
        out.append(finding)
    return out


def _with_sglang_configs(dep: t.Any, path: str | Path) -> tuple[t.Any, list[Finding]]:
    """Each instance's `sglang_config` YAML read (relative to the TOML file; to the working directory for a config
    read from stdin), its entries added to the instance, where they are checked like `server_args`."""
    from sglangc.errors import ConfigError
    from sglangc.load import read_sglang_config

    base = Path(".") if str(path) == "-" else Path(path).parent
    findings: list[Finding] = []
    instances = []
    for inst in dep.instances:
        if inst.sglang_config is not None:
            where = key_path("instances", inst.name, "sglang_config")
            try:
                entries, problems = read_sglang_config(base / inst.sglang_config, where, dep.config)
            except ConfigError as e:
                findings += e.findings
            else:
                findings += problems
                inst = dataclasses.replace(inst, sglang_config_args=tuple(sorted(entries.items())))
        instances.append(inst)
    return dataclasses.replace(dep, instances=tuple(instances)), findings


def _version_agreement(data: dict[str, t.Any], dep: t.Any, config: str) -> list[Finding]:
    """`master.pixi_environment` must be an environment of the shipped Pixi template, and a `sglang_version` the
    config names must be what that environment installs: the flags are checked against the SGLang that runs."""
    from sglangc.catalog import template_environments, template_versions

    environment = dep.master.pixi_environment
    environments = template_environments()
    if environment not in environments:
        return [
            Finding(
                config,
                key_path("master", "pixi_environment"),
                f"{show(environment)} is not an environment of the shipped Pixi template (`sglangc bundle -e` "
                f"refuses it too); its environments: {', '.join(environments)}",
            )
        ]
    installs = template_versions().get(environment)
    if "sglang_version" not in data or installs in (None, dep.sglang_version):
        return []
    others = [e for e, v in template_versions().items() if v == dep.sglang_version]
    fix = f', or master.pixi_environment = "{others[0]}", which installs it' if others else ""
    return [
        Finding(
            config,
            key_path("sglang_version"),
            f"{show(dep.sglang_version)} is not what master.pixi_environment = {show(environment)} installs "
            f'(SGLang {installs}): write sglang_version = "{installs}"{fix}',
        )
    ]


def _without_broken_instances(doc: SourceDoc, shape: list[Finding]) -> SourceDoc | None:
    """When every shape finding lies inside some instance's table: the config without those instances (and
    without the depends_on entries naming them), so that the cross-instance checks still run over the clean
    ones. None when a finding lies elsewhere (master, the top level), or no instance is clean."""
    instances = doc.data.get("instances")
    if not isinstance(instances, dict):
        return None
    broken = set()
    for finding in shape:
        name = next((n for n in instances if _inside(finding.key, key_path("instances", n))), None)
        if name is None:
            return None
        broken.add(name)
    if len(broken) == len(instances):
        return None
    kept = {}
    for name, raw in instances.items():
        if name in broken:
            continue
        if isinstance(raw.get("depends_on"), list):
            raw = {**raw, "depends_on": [d for d in raw["depends_on"] if d not in broken]}
        kept[name] = raw
    data = {**doc.data, "instances": kept}
    if validate(data, doc.config):  # cannot happen for a table that had no finding; never plan from it
        return None
    return dataclasses.replace(doc, data=data)


def _inside(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith((f"{prefix}.", f"{prefix}["))


def _clean_instances(data: dict[str, t.Any], shape: list[Finding], config: str) -> list[Finding]:
    """With shape errors elsewhere, the findings of each instance whose own table is clean, so that one run
    reports as much as it can. Cross-instance checks (GPUs, ports, depends_on) wait for a clean master."""
    from sglangc.catalog import chosen_catalog
    from sglangc.model import build_instance
    from sglangc.resolve import check_instance

    instances, catalog = data.get("instances"), chosen_catalog(data)
    if catalog is None or not isinstance(instances, dict):
        return []
    findings = []
    for instance, raw in sorted(instances.items()):
        prefix = key_path("instances", instance)
        if isinstance(raw, dict) and not any(_inside(f.key, prefix) for f in shape):
            findings += check_instance(build_instance(instance, raw), catalog, config)[1]
            if len(findings) > MAX_FINDINGS:
                break
    return findings


@dataclasses.dataclass(frozen=True)
class Compiled:
    """A compiled config: what was checked, and (when it had no errors) the artifacts and what changed in DIR."""

    checked: Checked
    out_dir: Path
    artifacts: tuple[Artifact, ...] = ()
    changes: Changes | None = None
    skipped_checks: tuple[str, ...] = ()  # lint checks that could not run here, one line each


def compile_config(
    path: str | Path, out_dir: str | Path, *, check_only: bool = False, node_rank: int = 0, emit: str = "bash"
) -> Compiled:
    """Check, render, lint, then write (or, with `check_only`, only compare) the artifacts of one config:
    node `node_rank`'s bash artifacts, or (`emit` "k8s-lws") Kubernetes objects for every node."""
    from sglangc.errors import UsageError, is_forbidden_char, is_utf8
    from sglangc.lint import lint
    from sglangc.render import render
    from sglangc.write import plan_changes, write

    if not str(out_dir):
        raise UsageError("-o: the output directory is an empty path")
    target = Path(out_dir).absolute()
    text = str(target)
    if os.path.realpath(target) == "/":
        raise UsageError("-o /: sglangc does not write into the root directory; name a directory of its own")
    if not is_utf8(text):
        raise UsageError(f"-o {show(text)}: the path is not valid UTF-8 (it is written into the scripts)")
    if any(is_forbidden_char(c) for c in text) or " ;" in text or " #" in text:
        raise UsageError(f"-o {show(text)}: supervisord cannot take this path (control characters, ' ;' or ' #')")
    if not is_utf8(str(path)):
        raise UsageError(
            f"{show(str(path))}: the config's file name is not valid UTF-8 (it is written into the scripts)"
        )
    if emit == "k8s-lws" and node_rank:
        raise UsageError("--node-rank applies to --target bash: the k8s-lws output holds every node")
    checked = check(path, node_rank)
    if checked.plan is None:
        return Compiled(checked, target)
    if emit == "k8s-lws":
        from sglangc.k8s import render_k8s

        artifacts, findings = render_k8s(checked.plan, text)
        if any(f.severity == "error" for f in findings):
            every = tuple(sort_findings([*checked.findings, *findings]))
            return Compiled(dataclasses.replace(checked, plan=None, findings=every), target)
        checked = dataclasses.replace(checked, findings=tuple(sort_findings([*checked.findings, *findings])))
        skipped: list[str] = []
    else:
        artifacts = render(checked.plan, text)
        skipped = lint(artifacts, checked.plan, text)
    changes = plan_changes(artifacts, target) if check_only else write(artifacts, target)
    return Compiled(checked, target, artifacts, changes, tuple(skipped))
