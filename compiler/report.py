"""Plans as text for people and as JSON for tools (format in docs/plan-json.md); findings as JSON
(docs/check-json.md)."""

from __future__ import annotations

import json
import shlex
import typing as t

from sglangc.resolve import LaunchUnit, Plan, secret_env_name

PLAN_FORMAT = 1
CHECK_FORMAT = 1
_HINT = "; did you mean "
REDACTED = "<redacted>"


def gpu_list(ids: t.Sequence[int]) -> str:
    """GPU ids for people: `0-3`, `0,2,5`, `-` when none."""
    if not ids:
        return "-"
    runs: list[list[int]] = []
    for g in ids:
        if runs and g == runs[-1][-1] + 1:
            runs[-1].append(g)
        else:
            runs.append([g])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs)


def _address(u: LaunchUnit) -> str:
    return f"{u.host}:{u.port}" if u.port is not None else f"{u.host}:-"


def summary(plan: Plan) -> str:
    dep = plan.deployment
    enabled = plan.enabled
    gpus = sorted({g for u in enabled for g in u.gpu_ids})
    head = (
        f"{dep.config}: ok: {len(plan.units)} instance(s), {len(enabled)} enabled, GPUs {gpu_list(gpus)}, "
        f"SGLang {dep.sglang_version}"
        + ("" if dep.master.enable else ", master.enable = false (nothing starts at boot)")
    )
    rows = [
        f"  {u.name}: gpus {gpu_list(u.gpu_ids)}, {_address(u)}, wave {u.wave}"
        + (f", node {plan.node_rank} of {u.nnodes}" if u.nnodes > 1 else "")
        if u.enabled
        else f"  {u.name}: disabled"
        for u in plan.units
    ]
    if plan.gateway:
        rows.append(f"  gateway: {plan.gateway.host}:{plan.gateway.port}, policy {plan.gateway.policy}")
    return "\n".join([head, *rows])


def _redacted(pairs: t.Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, REDACTED if secret_env_name(k) else v) for k, v in pairs]


def plan_text(plan: Plan) -> str:
    dep = plan.deployment
    header = ["NAME", "ENABLED", "WAVE", "GPUS", "HOST:PORT", "DEPENDS ON"]
    rows = [
        [
            u.name,
            "yes" if u.enabled else "no",
            str(u.wave or "-"),
            gpu_list(u.gpu_ids),
            _address(u),
            ",".join(u.depends_on) or "-",
        ]
        for u in plan.units
    ]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines = [
        f"config: {dep.config}",
        f"sglang: {dep.sglang_version}   master.enable: {str(dep.master.enable).lower()}   "
        f"gpu_count: {dep.master.gpu_count if dep.master.gpu_count is not None else '-'}",
        "",
        *table,
    ]
    for u in plan.units:
        lines += ["", f"{u.name}:"]
        if u.wait_for:
            lines.append(f"  waits for: {', '.join(u.wait_for)}")
        lines.append(f"  model: {model_source(u)}")
        for k, v in _redacted(u.env):
            lines.append(f"  env {k}={shlex.quote(v)}")
        if u.gpu_ids:
            lines.append(f"  env CUDA_VISIBLE_DEVICES={','.join(map(str, u.gpu_ids))}")
        for key, variable in u.secret_envs:
            lines.append(
                f"  --{key}: read from ${variable} at launch"
                if key != "api-key"
                else f"  api key: read from ${variable} at launch"
            )
        lines += _nodes_text(plan, u)
    gw = plan.gateway
    if gw:
        lines += [
            "",
            f"gateway: {gw.host}:{gw.port}   policy: {gw.policy}   metrics: {gw.metrics_host}:{gw.metrics_port}",
            f"  client key: {'read from $' + gw.api_key_env + ' at launch' if gw.api_key_env else 'none'}",
            "  control plane: "
            + (
                f"admin key read from ${gw.control_plane_api_key_env} at launch"
                if gw.control_plane_api_key_env
                else "closed (a random admin key made at launch)"
            ),
            *(f"  model {shlex.quote(model)}: {', '.join(names)}" for model, names in gw.models),
            f"  smg launch {shlex.join(gw.argv)}",
        ]
    return "\n".join(lines)


def _nodes_text(plan: Plan, u: LaunchUnit) -> list[str]:
    """The command of each node an instance runs on; for a multi-node instance, every node's part."""
    nnodes = u.nnodes
    if nnodes == 1:
        where = [] if u.enabled or plan.node_rank == 0 else ["  runs on node 0 only (not part of this node)"]
        return [*where, f"  python -m sglang.launch_server {shlex.join(u.argv)}"]
    lines = [
        f"  nodes: {nnodes}, each on its own GPUs {gpu_list(u.gpu_ids)}; this plan is node {plan.node_rank}'s part"
    ]
    if u.dist_init_env:
        lines.append(f"  --dist-init-addr: read from ${u.dist_init_env} at launch")
    lines.append("  readiness: node 0's /health (ranks > 0 serve no API)")
    lines += [f"  node {k}: python -m sglang.launch_server {shlex.join(u.argv_on(k))}" for k in range(nnodes)]
    return lines


def model_source(u: LaunchUnit) -> str:
    """Where an instance's model comes from and where it lands, in one line."""
    d = u.download
    if d is None:
        return f"{u.model_path} (local: mounted or copied there beforehand)"
    filters = "".join(f" --include {shlex.quote(p)}" for p in d.include)
    filters += "".join(f" --exclude {shlex.quote(p)}" for p in d.exclude)
    token = f", token from ${d.token_env}" if d.token_env else ""
    return (
        f"{d.source} {d.repo} @ {d.revision}{' (pinned)' if d.pinned else ''}{filters}{token} "
        f"→ {u.model_path} (download-models.sh {u.name})"
    )


def _download_json(u: LaunchUnit) -> dict[str, t.Any] | None:
    d = u.download
    if d is None:
        return None
    return {
        "source": d.source,
        "repo": d.repo,
        "revision": d.revision,
        "pinned": d.pinned,
        "include": list(d.include),
        "exclude": list(d.exclude),
        "token_env": d.token_env,
    }


def plan_json(plan: Plan) -> str:
    dep = plan.deployment
    doc = {
        "format": PLAN_FORMAT,
        "config": dep.config,
        "config_sha256": dep.config_sha256,
        "sglang_version": dep.sglang_version,
        "master": {"enable": dep.master.enable, "gpu_count": dep.master.gpu_count},
        "start_order": [u.name for u in plan.start_order],
        "settle_seconds": plan.settle_seconds,
        "node_rank": plan.node_rank,
        "instances": [
            {
                "name": u.name,
                "enabled": u.enabled,
                "gpu_ids": list(u.gpu_ids),
                "host": u.host,
                "port": u.port,
                "wave": u.wave,
                "depends_on": list(u.depends_on),
                "wait_for": list(u.wait_for),
                "model_path": u.model_path,
                "served_model_name": u.served_model_name,
                "api_key_env": u.api_key_env,
                "secret_envs": dict(u.secret_envs),
                "env": dict(_redacted(u.env)),
                "argv": list(u.argv),
                "autostart": u.autostart,
                "boot": u.boot,
                "weight_split": u.weight_split,
                "memory_fraction": u.memory_fraction,
                "program": u.program,
                "priority": u.priority,
                "probe_host": u.probe_host,
                "exports": dict(_redacted(u.exports)),
                "highest_gpu": u.highest_gpu,
                "log_file": u.log_file,
                "pid_file": u.pid_file,
                "secret_file": u.secret_file,
                "nnodes": u.nnodes,
                "dist_init_addr_env": u.dist_init_env,
                "nodes": [{"node_rank": k, "argv": list(u.argv_on(k))} for k in range(u.nnodes)],
                "instance": u.instance,
                "replica": u.replica,
                "replicas": u.replicas,
                "download": _download_json(u),
            }
            for u in plan.units
        ],
        "gateway": _gateway_json(plan),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _gateway_json(plan: Plan) -> dict[str, t.Any] | None:
    gw = plan.gateway
    if gw is None:
        return None
    return {
        "host": gw.host,
        "port": gw.port,
        "policy": gw.policy,
        "metrics": {"host": gw.metrics_host, "port": gw.metrics_port},
        "workers": [{"name": n, "url": url} for n, url in gw.workers],
        "models": {model: list(names) for model, names in gw.models},
        "api_key_env": gw.api_key_env,
        "control_plane_api_key_env": gw.control_plane_api_key_env,
        "argv": list(gw.argv),
        "startup_timeout": gw.startup_timeout,
        "boot": gw.boot,
        "program": gw.program,
        "priority": gw.priority,
        "probe_host": gw.probe_host,
        "log_file": gw.log_file,
        "pid_file": gw.pid_file,
        "secret_file": gw.secret_file,
    }


def compile_summary(plan: Plan, out_dir: object, changes: t.Any) -> str:
    enabled = plan.enabled
    gpus = sorted({g for u in enabled for g in u.gpu_ids})
    ports = ",".join(str(u.port) for u in enabled)
    total = len(changes.written) + len(changes.unchanged)
    return (
        f"{plan.deployment.config} → {out_dir}: {len(enabled)} instance(s) enabled of {len(plan.units)}, "
        f"GPUs {gpu_list(gpus)}, ports {ports or '-'}; {total} files ({len(changes.written)} written, "
        f"{len(changes.unchanged)} unchanged, {len(changes.removed)} removed)"
    )


def reload_summary(before: dict[str, str] | None, after: dict[str, str], runner: object) -> str | None:
    """What `reload` of a running deployment would do after this compile, from the revisions the previous
    manifest and this one record (None when there was no previous compile to compare with)."""
    if before is None:
        return None
    added = [n for n in after if n not in before]
    changed = [n for n in after if n in before and before[n] != after[n]]
    removed = [n for n in before if n not in after]
    kept = [n for n in after if before.get(n) == after[n]]
    parts = [
        f"{verb} {', '.join(names)}{what}"
        for verb, names, what in (
            ("start", added, " (new)"),
            ("restart", changed, " (changed)"),
            ("stop", removed, " (removed)"),
            ("leave", kept, " untouched"),
        )
        if names
    ]
    if not (added or changed or removed):
        return f"{runner} reload would change nothing"
    return f"{runner} reload would {', '.join(parts)}"


def check_json(results: t.Sequence[t.Any], strict: bool) -> str:
    """Every finding of every checked config as one JSON document (format in docs/check-json.md)."""
    from sglangc.load import locate

    configs, findings = [], []
    for result in results:
        failed = bool(result.errors) or (strict and bool(result.findings))
        configs.append({"file": result.config, "ok": not failed})
        for f in result.findings:
            line, col = (f.line, f.col) if f.line else locate(result.raw, f.key) if f.key else (0, 0)
            message, hint = f.message, None
            if _HINT in message:
                message, rest = message.split(_HINT, 1)
                hint = "did you mean " + rest
            findings.append(
                {
                    "file": f.config,
                    "line": line or None,
                    "column": col or None,
                    "key": f.key or None,
                    "severity": f.severity,
                    "message": message,
                    "hint": hint,
                }
            )
    document = {"format": CHECK_FORMAT, "ok": all(c["ok"] for c in configs), "configs": configs, "findings": findings}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
