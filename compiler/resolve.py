"""Cross-checks and allocation on graphs: GPUs, ports, depends_on; start waves; the final argv of every instance."""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import re
import typing as t

from sglangc.catalog import (
    Catalog,
    FlagCheck,
    check_gateway_args,
    check_parsers,
    check_server_args,
    check_server_args_env,
    load_smg_catalog,
    template_has,
)
from sglangc.errors import MAX_FINDINGS, Finding, key_path, show
from sglangc.model import Deployment, Download, Gateway, Instance, Master

SHARED_GPU_MEMORY = 0.9
# With mem_fraction_static unset SGLang picks a share of each GPU from its memory and the parallel layout; the
# memory preflight assumes the most it takes, so that it refuses only what cannot fit.
AUTO_MEMORY_FRACTION = 0.9
PROGRAM_PREFIX = "sglang-"
LOG_SUBDIR = "sglangc"  # below master.log_dir
SOCKET_NAME = "supervisor.sock"  # in master.runtime_dir
# Wildcard binds, and the loopback address a probe reaches each of them on.
WILDCARD_PROBE = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
ANY_HOSTS = frozenset(WILDCARD_PROBE)
_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD", re.IGNORECASE)
_OWNED_ENV = {"CUDA_VISIBLE_DEVICES": "gpu_ids"}

if t.TYPE_CHECKING:
    import networkx as nx

# networkx is imported where a graph is built, and graphs are built only when there is something to relate
# (two enabled instances, or a depends_on): it is the slowest import of all, and most configs hold one server.


@dataclasses.dataclass(frozen=True)
class LaunchUnit:
    """One instance with every value final: what a launch script, the runner and the plan show."""

    name: str
    enabled: bool
    autostart: bool  # started by `start` with no names (else only by name)
    boot: bool  # started at boot, and by supervisord on its own: master.enable and autostart
    model_path: str
    served_model_name: str
    host: str
    port: int | None
    gpu_ids: tuple[int, ...]
    wave: int | None  # 1 starts first; None when disabled or the dependencies have a cycle
    depends_on: tuple[str, ...]
    wait_for: tuple[str, ...]  # depends_on plus instances sharing a GPU that start earlier
    argv: tuple[str, ...]  # after `python -m sglang.launch_server`
    env: tuple[tuple[str, str], ...]  # the config's env, sorted by name
    api_key_env: str | None
    secret_envs: tuple[tuple[str, str], ...]  # (--config YAML key, variable) for the API key and server_args_env
    program: str  # the supervisord program
    priority: int  # supervisord's start priority: lower starts first, one step per wave
    probe_host: str  # where a readiness probe reaches the server (a wildcard bind over loopback)
    exports: tuple[tuple[str, str], ...]  # every variable the launch script exports, in order
    highest_gpu: int | None  # checked against the GPUs nvidia-smi lists; None without GPUs
    weight_split: int  # GPUs one copy of the weights is split over (tp × pp): the memory preflight divides by it
    memory_fraction: float  # mem_fraction_static, or the most SGLang's automatic choice takes when it is unset
    log_file: str
    pid_file: str
    secret_file: str | None  # the YAML the secrets reach SGLang through; None without secrets
    nnodes: int = 1  # machines the instance spans
    node_rank: int = 0  # which of them this plan is for
    dist_init_env: str | None = None  # the variable holding --dist-init-addr at launch (dist_init_addr_env)
    probe_env: str | None = None  # ranks > 0 with dist_init_addr_env: node 0's host is read from it at run time
    replica_of: str | None = None  # the config's instance this is a replica of (named <instance>-<k>)
    replica: int | None = None  # k, for a replica
    replicas: int = 1  # how many replicas its instance has
    download: Download | None = None  # where download-models.sh fetches the weights from; None: they are local

    @property
    def memory_percent(self) -> int:
        return round(self.memory_fraction * 100)

    def argv_on(self, rank: int) -> tuple[str, ...]:
        """The argv of node `rank` of a multi-node instance: the same words but the value of --node-rank."""
        if self.nnodes == 1:
            return self.argv
        at = self.argv.index("--node-rank") + 1
        return (*self.argv[:at], str(rank), *self.argv[at + 1 :])

    @property
    def instance(self) -> str:
        """The config's instance this unit comes from (itself, or the instance it is a replica of)."""
        return self.replica_of or self.name

    @property
    def url(self) -> str:
        """Where the gateway (or any local client) reaches it."""
        return f"http://{_url_host(self.probe_host)}:{self.port}"


GATEWAY_NAME = "gateway"
GATEWAY_PROGRAM = PROGRAM_PREFIX + GATEWAY_NAME
DEFAULT_METRICS_HOST = "127.0.0.1"
DEFAULT_METRICS_PORT = 29000  # smg's own default
# smg flags sglangc sets unless gateway.server_args does: smg's defaults look for a starting worker every 30 s
# and probe a running one every 60 s; a replica that has just come up (or gone) is noticed sooner with these.
GATEWAY_DEFAULTS = (("worker-startup-check-interval", 2), ("health-check-interval-secs", 10))


@dataclasses.dataclass(frozen=True)
class GatewayUnit:
    """SGLang's model gateway (smg) with every value final: its launch script, supervisord program and plan."""

    boot: bool  # started at boot (master.enable)
    host: str
    port: int
    probe_host: str
    policy: str
    metrics_host: str
    metrics_port: int
    workers: tuple[tuple[str, str], ...]  # (unit name, URL) of every enabled instance and replica, by name
    models: tuple[tuple[str, tuple[str, ...]], ...]  # served model name → the units that serve it, sorted
    argv: tuple[str, ...]  # `smg launch` flags (no secret: keys reach smg in-process, from secret_file)
    api_key_env: str | None  # the key clients must send (smg also sends it to the workers)
    control_plane_api_key_env: str | None  # None: a random control-plane key made at launch
    startup_timeout: int  # smg's --worker-startup-timeout-secs
    program: str
    priority: int  # after every instance: supervisord stops it first
    log_file: str
    pid_file: str
    secret_file: str  # the private YAML file the launch script writes the keys into (always: the control key)

    name = GATEWAY_NAME

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.probe_host)}:{self.port}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclasses.dataclass(frozen=True)
class Plan:
    deployment: Deployment
    units: tuple[LaunchUnit, ...]  # every instance (each replica its own unit), by name
    settle_seconds: int  # how long supervisord may take to call a start RUNNING or FATAL
    node_rank: int = 0  # the node this plan is for (instances with nnodes > 1 have a part on each)
    gateway: GatewayUnit | None = None  # SGLang's model gateway in front of the enabled units ([gateway])

    @property
    def enabled(self) -> tuple[LaunchUnit, ...]:
        return tuple(u for u in self.units if u.enabled)

    @property
    def log_dir(self) -> str:
        """The deployment's private log directory (mode 0700) under master.log_dir, which may be shared (/tmp)."""
        return private_log_dir(self.deployment.master)

    @property
    def start_order(self) -> tuple[LaunchUnit, ...]:
        """The enabled instances, wave by wave, by name within a wave."""
        return tuple(sorted(self.enabled, key=lambda u: (u.wave or 0, u.name)))

    def relocated(self, root: str) -> Plan:
        """The same plan with its runtime and log directories under `root` (to lint the conf in a scratch dir)."""
        master = dataclasses.replace(
            self.deployment.master,
            runtime_dir=root + self.deployment.master.runtime_dir,
            log_dir=root + self.deployment.master.log_dir,
        )
        units = tuple(dataclasses.replace(u, **_files(master, u.name, bool(u.secret_envs))) for u in self.units)
        gateway = self.gateway and dataclasses.replace(self.gateway, **_gateway_files(master))
        return dataclasses.replace(
            self, deployment=dataclasses.replace(self.deployment, master=master), units=units, gateway=gateway
        )


def resolve(dep: Deployment, catalog: Catalog, node_rank: int = 0) -> tuple[Plan, list[Finding]]:
    """The plan of node `node_rank` (0: the head, which also runs every single-node instance and the gateway)
    and every finding; each replica of an instance is a unit of its own."""
    findings: list[Finding] = []
    expanded, origins = _expand_replicas(dep, findings)
    plan, own = _resolve(expanded, catalog, node_rank)
    findings += [_origin_key(f, origins, dep) for f in own]
    return dataclasses.replace(plan, deployment=dep), findings


def _resolve(dep: Deployment, catalog: Catalog, node_rank: int) -> tuple[Plan, list[Finding]]:
    findings: list[Finding] = []
    flags = {}
    for inst in dep.instances:
        flags[inst.name], own = check_instance(inst, catalog, dep.config)
        findings += own
        if sum(f.severity == "error" for f in findings) > MAX_FINDINGS:
            return Plan(dep, (), 0), findings  # checked no further (sort_findings says so)

    findings += _check_multinode(dep, node_rank)
    node0 = _node0_ports(dep, flags)
    gpus = _allocate_gpus(dep, flags, findings)
    gateway_args = check_gateway_args(dep.gateway.server_args, load_smg_catalog(), dep.config)
    reserved = _gateway_ports(dep.gateway) if dep.gateway.enable else {}
    findings += gateway_args.findings
    ports = _allocate_ports(dep, findings, {*reserved, *(p for taken in node0.values() for p in taken)})
    findings += _check_node0_ports(dep, ports, node0)
    shares: set[tuple[str, ...]] = set()
    if sum(i.enable for i in dep.instances) > 1:
        graph = _resource_graph(dep, gpus, ports)
        shares = _check_gpu_sharing(dep, graph, findings)
        _check_port_sharing(dep, graph, findings)
    edges = _dependencies(dep, findings)
    if edges or shares:
        waves, wait_for = _waves(dep, _dependency_graph(dep, edges, findings), shares)
    else:
        waves, wait_for = {i.name: 1 for i in dep.instances if i.enable}, {}

    here = {i.name: i.enable and i.nnodes > node_rank for i in dep.instances}  # what runs on this node
    if node_rank > 0:  # a rank > 0 joins the rendezvous at once: node 0 waits for the dependencies
        wait_for = {}
    units = tuple(
        LaunchUnit(
            name=i.name,
            enabled=here[i.name],
            autostart=i.autostart,
            boot=here[i.name] and i.autostart and dep.master.enable,
            model_path=i.model_path,
            served_model_name=i.served_model_name or i.model_path,
            host=i.host,
            port=ports.get(i.name),
            gpu_ids=gpus.get(i.name, ()),
            wave=waves.get(i.name),
            depends_on=i.depends_on,
            wait_for=wait_for.get(i.name, ()),
            argv=_argv(dep, i, ports.get(i.name), flags[i.name], node_rank),
            env=i.env,
            api_key_env=i.api_key_env,
            secret_envs=_secret_envs(i),
            program=PROGRAM_PREFIX + i.name,
            priority=100 + 10 * (waves.get(i.name) or 0),
            probe_host=_probe_host(i, node_rank),
            exports=_exports(i, gpus.get(i.name, ())),
            highest_gpu=max(gpus.get(i.name, ()), default=None),
            weight_split=i.tp_size * flags[i.name].pp_size,
            memory_fraction=i.mem_fraction_static if i.mem_fraction_static is not None else AUTO_MEMORY_FRACTION,
            **_files(dep.master, i.name, bool(_secret_envs(i))),
            nnodes=i.nnodes,
            node_rank=node_rank if i.nnodes > 1 else 0,
            dist_init_env=i.dist_init_addr_env if i.nnodes > 1 else None,
            probe_env=i.dist_init_addr_env if i.nnodes > 1 and node_rank > 0 else None,
            replica_of=i.replica_of,
            replica=int(i.name.rsplit("-", 1)[1]) if i.replica_of else None,
            replicas=i.replicas,
            download=i.download,
        )
        for i in dep.instances
    )
    master = dep.master
    settle = (master.start_seconds + master.start_retries + 2) * (master.start_retries + 1) + 5
    findings += _check_runnable(dep, units)
    gateway = None
    if dep.gateway.enable:
        findings += _check_gateway(dep, units, reserved, catalog)
        if node_rank == 0:  # the front door is on node 0, with every instance's API
            gateway = _gateway_unit(dep, units, reserved, gateway_args)
    return Plan(deployment=dep, units=units, settle_seconds=settle, node_rank=node_rank, gateway=gateway), findings


def _expand_replicas(dep: Deployment, findings: list[Finding]) -> tuple[Deployment, dict[str, tuple[str, int]]]:
    """The deployment with each instance of `replicas = N` replaced by N copies `<name>-0` … `<name>-(N-1)`, each
    with its own GPUs (the k-th list of gpu_ids, or "auto") and port (`port` + k); depends_on on such an instance
    means on all its replicas. Also: replica name → (instance, k)."""
    names = {i.name for i in dep.instances}
    origins: dict[str, tuple[str, int]] = {}
    copies: dict[str, tuple[str, ...]] = {}
    instances: list[Instance] = []
    gpu_ids: tuple[int, ...] | t.Literal["auto"] | None
    for inst in dep.instances:
        where = key_path("instances", inst.name)
        lists = inst.replica_gpu_ids
        if lists is not None and len(lists) != inst.replicas:
            findings.append(
                Finding(
                    dep.config,
                    f"{where}.gpu_ids",
                    f"lists GPUs for {len(lists)} replica(s) but replicas = {inst.replicas}: give one list per replica",
                )
            )
            lists = lists[: inst.replicas] if len(lists) > inst.replicas else None
        if inst.replicas == 1:
            instances.append(
                dataclasses.replace(inst, gpu_ids=lists[0] if lists else inst.gpu_ids, replica_gpu_ids=None)
            )
            continue
        if inst.enable and not dep.gateway.enable:
            findings.append(
                Finding(
                    dep.config,
                    f"{where}.replicas",
                    "replicas > 1 needs the gateway (gateway.enable = true), which balances requests over them",
                )
            )
        if isinstance(inst.gpu_ids, tuple):
            findings.append(
                Finding(
                    dep.config,
                    f"{where}.gpu_ids",
                    f'with replicas = {inst.replicas}, give one list of GPU ids per replica (or "auto")',
                )
            )
        clash = sorted(n for k in range(inst.replicas) if (n := f"{inst.name}-{k}") in names)
        if clash:
            findings.append(
                Finding(dep.config, f"{where}.replicas", f"its replica {show(clash[0])} has the name of an instance")
            )
            gpu_ids = lists[0] if lists else inst.gpu_ids
            instances.append(dataclasses.replace(inst, replicas=1, replica_gpu_ids=None, gpu_ids=gpu_ids))
            continue
        copies[inst.name] = tuple(f"{inst.name}-{k}" for k in range(inst.replicas))
        for k, name in enumerate(copies[inst.name]):
            origins[name] = (inst.name, k)
            gpu_ids = lists[k] if lists else None if isinstance(inst.gpu_ids, tuple) else inst.gpu_ids
            port = inst.port + k if inst.port is not None and inst.port + k <= 65535 else inst.port
            instances.append(
                dataclasses.replace(
                    inst, name=name, gpu_ids=gpu_ids, replica_gpu_ids=None, port=port, replica_of=inst.name
                )
            )
    if not copies:
        return dataclasses.replace(dep, instances=tuple(instances)), origins
    instances = [
        dataclasses.replace(i, depends_on=tuple(n for d in i.depends_on for n in copies.get(d, (d,))))
        for i in instances
    ]
    return dataclasses.replace(dep, instances=tuple(sorted(instances, key=lambda i: i.name))), origins


def _origin_key(f: Finding, origins: dict[str, tuple[str, int]], dep: Deployment) -> Finding:
    """A finding about a replica, keyed by the config's own key path (`instances.x.gpu_ids[1]`, not `x-1`)."""
    if not origins or not f.key.startswith("instances."):
        return f
    for name, (instance, k) in origins.items():
        prefix = key_path("instances", name)
        if f.key == prefix or f.key.startswith((prefix + ".", prefix + "[")):
            rest = f.key[len(prefix) :]
            if rest.startswith(".gpu_ids") and dep.instance(instance).replica_gpu_ids is not None:
                rest = f".gpu_ids[{k}]" + rest[len(".gpu_ids") :]
            return dataclasses.replace(f, key=key_path("instances", instance) + rest)
    return f


def _metrics(gw: Gateway) -> tuple[str, int]:
    """Where the gateway's metrics listener binds: gateway.server_args, else loopback and smg's default port."""
    args = dict(gw.server_args)
    host, port = args.get("prometheus-host", DEFAULT_METRICS_HOST), args.get("prometheus-port", DEFAULT_METRICS_PORT)
    return (
        host if isinstance(host, str) else DEFAULT_METRICS_HOST,
        port if isinstance(port, int) and not isinstance(port, bool) else DEFAULT_METRICS_PORT,
    )


def _gateway_ports(gw: Gateway) -> dict[int, str]:
    """The ports the gateway holds (its own and its metrics port) → the key that sets each."""
    return {
        _metrics(gw)[1]: key_path("gateway", "server_args", "prometheus-port"),
        gw.port: key_path("gateway", "port"),
    }


def _gateway_files(master: Master) -> dict[str, t.Any]:
    return {
        "log_file": f"{private_log_dir(master)}/sglang-{GATEWAY_NAME}.log",
        "pid_file": f"{master.runtime_dir}/pids/{GATEWAY_NAME}.pid",
        "secret_file": f"{master.runtime_dir}/secrets/{GATEWAY_NAME}.yaml",
    }


def _gateway_unit(
    dep: Deployment, units: tuple[LaunchUnit, ...], reserved: dict[int, str], args: FlagCheck
) -> GatewayUnit:
    gw, master = dep.gateway, dep.master
    workers = tuple((u.name, u.url) for u in units if u.enabled and u.port is not None)
    models: dict[str, list[str]] = {}
    for u in units:
        if u.enabled:
            models.setdefault(u.served_model_name, []).append(u.name)
    metrics_host, metrics_port = _metrics(gw)
    given = dict(gw.server_args)
    argv = ["--host", gw.host, "--port", str(gw.port), "--policy", gw.policy]
    if "prometheus-host" not in given:
        argv += ["--prometheus-host", metrics_host]
    if "prometheus-port" not in given:
        argv += ["--prometheus-port", str(metrics_port)]
    argv += ["--worker-startup-timeout-secs", str(master.ready_timeout)]
    if "shutdown-grace-period-secs" not in given:  # smg's 180 s would outlast supervisord's stopwaitsecs
        argv += ["--shutdown-grace-period-secs", str(master.stop_timeout)]
    for flag, value in GATEWAY_DEFAULTS:
        if flag not in given:
            argv += [f"--{flag}", str(value)]
    if workers:
        argv += ["--worker-urls", *(url for _, url in workers)]
    last_wave = max((u.wave or 0 for u in units if u.enabled), default=0)
    return GatewayUnit(
        boot=master.enable,
        host=gw.host,
        port=gw.port,
        probe_host=WILDCARD_PROBE.get(gw.host, gw.host),
        policy=gw.policy,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        workers=workers,
        models=tuple(sorted((m, tuple(n)) for m, n in models.items())),
        argv=(*argv, *args.argv),
        api_key_env=gw.api_key_env,
        control_plane_api_key_env=gw.control_plane_api_key_env,
        startup_timeout=master.ready_timeout,
        program=GATEWAY_PROGRAM,
        priority=100 + 10 * (last_wave + 1),
        **_gateway_files(master),
    )


def _check_gateway(
    dep: Deployment, units: tuple[LaunchUnit, ...], reserved: dict[int, str], catalog: Catalog
) -> list[Finding]:
    """The gateway's own values and what it means for the instances behind it."""
    gw, config = dep.gateway, dep.config
    findings = []
    if _metrics(gw)[1] == gw.port:
        findings.append(
            Finding(
                config,
                key_path("gateway", "port"),
                f"port {gw.port} is also the gateway's metrics port (gateway.server_args.prometheus-port)",
            )
        )
    policy = load_smg_catalog().options["policy"]
    if policy.choices is not None and gw.policy not in policy.choices:
        close = difflib.get_close_matches(gw.policy, [str(c) for c in policy.choices], n=1)
        hint = f"did you mean {show(close[0])}? " if close else ""
        findings.append(
            Finding(
                config,
                key_path("gateway", "policy"),
                f"{show(gw.policy)} is not a policy of smg: {hint}choose from: {', '.join(map(str, policy.choices))}",
            )
        )
    if template_has(dep.master.pixi_environment, "smg") is False:
        findings.append(
            Finding(
                config,
                key_path("gateway", "enable"),
                (
                    f"the Pixi template's environment {show(dep.master.pixi_environment)} has no smg (SGLang's model "
                    "gateway): its bundle cannot run the gateway"
                ),
                "warning",
            )
        )
    if gw.host in ANY_HOSTS and not gw.api_key_env:
        findings.append(
            Finding(
                config,
                key_path("gateway", "host"),
                f"{show(gw.host)} accepts connections from anywhere and no api_key_env is set: anyone who reaches "
                "the port can use every model",
                "warning",
            )
        )
    for field in ("host", "policy"):
        if getattr(gw, field).startswith("-"):
            findings.append(
                Finding(
                    config,
                    key_path("gateway", field),
                    f"{show(getattr(gw, field))} starts with '-': smg's argument parser would take it for a flag",
                )
            )
    if any(u.name == GATEWAY_NAME for u in units):
        findings.append(
            Finding(
                config,
                key_path("instances", GATEWAY_NAME),
                f"{show(GATEWAY_NAME)} is the gateway's name (launch-gateway.sh, program sglang-gateway): rename the instance",
            )
        )
    gw_host = _host(gw.host)
    for u in units:
        if not u.enabled:
            continue
        where = key_path("instances", u.name)
        if u.port in reserved and (
            gw_host in ANY_HOSTS
            or _host(u.host) in ANY_HOSTS
            or _host(u.host) == gw_host
            or reserved[u.port].endswith("prometheus-port")
        ):
            findings.append(
                Finding(config, f"{where}.port", f"port {u.port} is also used by the gateway ({reserved[u.port]})")
            )
        if u.api_key_env and u.api_key_env != gw.api_key_env:
            findings.append(
                Finding(
                    config,
                    f"{where}.api_key_env",
                    (
                        "the gateway sends its own key (gateway.api_key_env) to every worker: an instance behind "
                        "it needs the same api_key_env, or none"
                    ),
                )
            )
        if u.host in ANY_HOSTS:
            findings.append(
                Finding(
                    config,
                    f"{where}.host",
                    f"{show(u.host)}: clients can reach this instance around the gateway; behind it, keep the default 127.0.0.1",
                    "warning",
                )
            )
    return findings


# Linux refuses to exec a command with one argument or environment entry of 128 KiB or more (E2BIG).
MAX_ARG_BYTES = 128 * 1024 - 1
SOCKET_MAX_BYTES = 100  # a unix socket path (sun_path holds 108 bytes with its NUL; keep a margin)


def _check_runnable(dep: Deployment, units: tuple[LaunchUnit, ...]) -> list[Finding]:
    """What would pass the schema but fail at boot: values the kernel or supervisord cannot take."""
    findings = []
    master = dep.master
    for field in ("runtime_dir", "log_dir"):
        value = getattr(master, field)
        if any(sep in value for sep in (" ;", " #", "\t;", "\t#")):
            findings.append(
                Finding(
                    dep.config,
                    key_path("master", field),
                    (f"{show(value)}: supervisord.conf would read ' ;' or ' #' in it as the start of a comment"),
                )
            )
    socket = f"{master.runtime_dir}/{SOCKET_NAME}".encode()
    if len(socket) >= SOCKET_MAX_BYTES:
        findings.append(
            Finding(
                dep.config,
                key_path("master", "runtime_dir"),
                (
                    f"supervisord's socket {show(socket.decode(), limit=60)} would be {len(socket)} bytes; a unix socket "
                    f"path must stay under {SOCKET_MAX_BYTES} bytes (choose a shorter runtime_dir)"
                ),
            )
        )
    for u in units:
        if not u.enabled:
            continue
        for key, value in u.exports:
            if len(f"{key}={value}".encode()) > MAX_ARG_BYTES:
                where = (
                    key_path("instances", u.name, "env", key)
                    if key != "CUDA_VISIBLE_DEVICES"
                    else key_path("instances", u.name, "gpu_ids")
                )
                findings.append(Finding(dep.config, where, _too_long(f"{key}=…")))
        for word in u.argv:
            if len(word.encode()) > MAX_ARG_BYTES:
                findings.append(
                    Finding(
                        dep.config, key_path("instances", u.name), _too_long(f"the argument {show(word, limit=30)}")
                    )
                )
    return findings


def _too_long(what: str) -> str:
    return f"{what} is more than {MAX_ARG_BYTES:,} bytes: Linux cannot start a program with it (E2BIG)"


def _exports(inst: Instance, gpus: tuple[int, ...]) -> tuple[tuple[str, str], ...]:
    """What the launch script exports: the GPUs, the config's env, and unbuffered Python output (so server logs
    reach the log file as they happen) unless the config says otherwise."""
    exports = [("CUDA_VISIBLE_DEVICES", ",".join(map(str, gpus))), *inst.env]
    if "PYTHONUNBUFFERED" not in dict(inst.env):
        exports.append(("PYTHONUNBUFFERED", "1"))
    if inst.download and "HF_HUB_OFFLINE" not in dict(inst.env):
        exports.append(("HF_HUB_OFFLINE", "1"))  # the weights are on disk: SGLang never reaches for the hub
    return tuple(exports)


def _check_download(inst: Instance, config: str) -> list[Finding]:
    if inst.download is None:
        return []
    findings = []
    if not inst.model_path.startswith("/"):
        findings.append(
            Finding(
                config,
                key_path("instances", inst.name, "model_path"),
                f"{show(inst.model_path)}: with a download table, model_path is the directory the model lands in and must be an absolute path",
            )
        )
    if not inst.download.pinned:
        findings.append(
            Finding(
                config,
                key_path("instances", inst.name, "download", "revision"),
                (
                    f"{show(inst.download.revision)} is not a pinned commit: the model changes when the repository "
                    "does, and every download-models.sh run asks the hub; give a commit id (40 hex digits)"
                ),
                "warning",
            )
        )
    return findings


def private_log_dir(master: Master) -> str:
    """Where the logs go: a directory of the deployment's own below master.log_dir. In a directory other users
    can write (/tmp), a log file of its own name could be planted there; inside a 0700 directory the scripts
    create and verify, it cannot."""
    return f"{master.log_dir.rstrip('/') or ''}/{LOG_SUBDIR}"


def _secret_envs(inst: Instance) -> tuple[tuple[str, str], ...]:
    """The secrets the launch script writes into the instance's private --config YAML: key, then variable."""
    return ((("api-key", inst.api_key_env),) if inst.api_key_env else ()) + inst.server_args_env


def _files(master: Master, name: str, secrets: bool) -> dict[str, t.Any]:
    """The runtime files of one instance: its log, its pid file and (with secrets) their YAML file."""
    return {
        "log_file": f"{private_log_dir(master)}/sglang-server-{name}.log",
        "pid_file": f"{master.runtime_dir}/pids/{name}.pid",
        "secret_file": f"{master.runtime_dir}/secrets/{name}.yaml" if secrets else None,
    }


def check_instance(inst: Instance, catalog: Catalog, config: str) -> tuple[FlagCheck, list[Finding]]:
    """What can be checked of one instance on its own: SGLang flags, parsers, env, values SGLang would misread."""
    flags = check_server_args(inst, catalog, config)
    findings = [
        *flags.findings,
        *check_server_args_env(inst, catalog, config),
        *check_parsers(inst, catalog, config),
        *_check_env(inst, config),
        *_check_download(inst, config),
    ]
    for field in ("model_path", "served_model_name", "host"):
        if (getattr(inst, field) or "").startswith("-"):
            findings.append(
                Finding(
                    config,
                    key_path("instances", inst.name, field),
                    (
                        f"{show(getattr(inst, field))} starts with '-': SGLang's argument parser would take it for a flag"
                    ),
                )
            )
    if inst.enable and inst.host in ANY_HOSTS and not inst.api_key_env:
        findings.append(
            Finding(
                config,
                key_path("instances", inst.name, "host"),
                (
                    f"{show(inst.host)} accepts connections from anywhere and no api_key_env is set: "
                    "anyone who reaches the port can use the server"
                ),
                "warning",
            )
        )
    return flags, findings


def _argv(dep: Deployment, i: Instance, port: int | None, flags: FlagCheck, node_rank: int) -> tuple[str, ...]:
    argv = ["--model-path", i.model_path]
    if i.served_model_name:
        argv += ["--served-model-name", i.served_model_name]
    argv += ["--host", i.host]
    if port is not None:
        argv += ["--port", str(port)]
    argv += ["--tp-size", str(i.tp_size), "--dp-size", str(i.dp_size)]
    if i.reasoning_parser:
        argv += ["--reasoning-parser", i.reasoning_parser]
    if i.tool_call_parser:
        argv += ["--tool-call-parser", i.tool_call_parser]
    if i.trust_remote_code:
        argv += ["--trust-remote-code"]
    if i.mem_fraction_static is not None:
        argv += ["--mem-fraction-static", str(i.mem_fraction_static)]
    secret = _files(dep.master, i.name, bool(_secret_envs(i)))["secret_file"]
    if secret:
        argv += ["--config", secret]
    if i.nnodes > 1:  # with dist_init_addr_env the launch script adds --dist-init-addr from the variable
        argv += ["--nnodes", str(i.nnodes), "--node-rank", str(node_rank)]
        if i.dist_init_addr:
            argv += ["--dist-init-addr", i.dist_init_addr]
    return (*argv, *flags.argv)


# ---------------------------------------------------------------------------------------------------------
# Multi-node instances (nnodes > 1): node 0 runs the HTTP API and the rendezvous; the others join it.
LOOPBACK = ("127.", "localhost", "::1")
LARGEST_NODE = 8  # GPUs of a common machine: an instance needing more is told of nnodes


def _probe_host(i: Instance, node_rank: int) -> str:
    """Where readiness is probed: the instance's own server, except on a rank > 0 of a multi-node instance,
    whose readiness is node 0's API, on the dist-init host ('' when that is read from a variable at run time)."""
    if i.nnodes > 1 and node_rank > 0:
        return split_addr(i.dist_init_addr)[0] if i.dist_init_addr else ""
    return WILDCARD_PROBE.get(i.host, i.host)


def split_addr(addr: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets) → host, port; the schema has checked the shape."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def _check_multinode(dep: Deployment, node_rank: int) -> list[Finding]:
    """nnodes with its rendezvous address; the node rank asked for within the ranks of some instance."""
    findings = []
    for i in dep.instances:
        given = [f for f in ("dist_init_addr", "dist_init_addr_env") if getattr(i, f)]
        if i.nnodes == 1:
            findings += [
                Finding(dep.config, key_path("instances", i.name, f), "is only used with nnodes > 1") for f in given
            ]
            continue
        if not given:
            findings.append(
                Finding(
                    dep.config,
                    key_path("instances", i.name, "nnodes"),
                    f'nnodes = {i.nnodes} needs node 0\'s rendezvous address: set dist_init_addr = "HOST:PORT" '
                    "or dist_init_addr_env (the variable holding it at launch)",
                )
            )
        elif len(given) == 2:
            findings.append(
                Finding(
                    dep.config,
                    key_path("instances", i.name, "dist_init_addr_env"),
                    "give dist_init_addr or dist_init_addr_env, not both",
                )
            )
        if i.dist_init_addr and not 1 <= split_addr(i.dist_init_addr)[1] <= 65535:
            findings.append(
                Finding(
                    dep.config,
                    key_path("instances", i.name, "dist_init_addr"),
                    f"{show(i.dist_init_addr)}: the port must be 1 to 65535",
                )
            )
        if i.enable and i.host.startswith(LOOPBACK):
            findings.append(
                Finding(
                    dep.config,
                    key_path("instances", i.name, "host"),
                    f"{show(i.host)} on a multi-node instance: ranks > 0 probe node 0's API (on the dist-init host) "
                    'for readiness and cannot reach a loopback bind; use the node\'s address or "0.0.0.0"',
                    "warning",
                )
            )
    spans = max((i.nnodes for i in dep.instances if i.enable), default=1)
    if node_rank >= spans:
        findings.append(
            Finding(
                dep.config,
                "",
                f"--node-rank {node_rank} is outside the nodes of this config: "
                + (
                    "no enabled instance has nnodes > 1 (only node 0 exists)"
                    if spans == 1
                    else f"the widest instance has nnodes = {spans} (ranks 0 to {spans - 1})"
                ),
            )
        )
    return findings


def _node0_ports(dep: Deployment, flags: dict[str, FlagCheck]) -> dict[str, list[int]]:
    """The ports the rendezvous of each enabled multi-node instance with a literal address opens on node 0:
    PORT, and with DP attention also PORT+1 … PORT+6 and PORT+13."""
    taken = {}
    for i in dep.instances:
        if i.enable and i.nnodes > 1 and i.dist_init_addr:
            port = split_addr(i.dist_init_addr)[1]
            taken[i.name] = [port, *range(port + 1, port + 7), port + 13] if flags[i.name].dp_attention else [port]
    return taken


def _check_node0_ports(dep: Deployment, ports: dict[str, int], node0: dict[str, list[int]]) -> list[Finding]:
    """Node 0's rendezvous ports against every HTTP port there (on any host: the rendezvous binds them all) and
    against the rendezvous ports of the instances before it by name."""
    findings = []
    http: dict[int, str] = {}
    for name, port in sorted(ports.items()):
        if dep.instance(name).enable:
            http.setdefault(port, name)
    earlier: dict[int, str] = {}
    for name, taken in sorted(node0.items()):
        base = taken[0]
        for p in taken:
            label = f"dist-init port {base}" + (f" + {p - base} = {p} (DP attention)" if p != base else "")
            clash = []
            if p > 65535:
                clash.append("beyond 65535")
            if p in http:
                clash.append(
                    "also this instance's HTTP port" if http[p] == name else f"also {show(http[p])}'s HTTP port"
                )
            if p in earlier:
                clash.append(f"also used by the rendezvous of {show(earlier[p])}")
            for problem in clash:
                findings.append(
                    Finding(
                        dep.config, key_path("instances", name, "dist_init_addr"), f"{label} on node 0 is {problem}"
                    )
                )
        for p in taken:
            earlier.setdefault(p, name)
    return findings


def secret_env_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret."""
    return bool(_SECRET_NAME.search(name))


def _check_env(inst: Instance, config: str) -> list[Finding]:
    findings = []
    for name, _ in inst.env:
        where = key_path("instances", inst.name, "env", name)
        if name in _OWNED_ENV:
            findings.append(Finding(config, where, f"is set from the field `{_OWNED_ENV[name]}`; use that instead"))
        elif secret_env_name(name):
            findings.append(
                Finding(
                    config,
                    where,
                    (
                        "looks like a secret written into the config; pass it in the container's environment "
                        "instead (every process started at boot inherits it)"
                    ),
                    "warning",
                )
            )
    return findings


def _gpus_needed(inst: Instance, flags: FlagCheck) -> tuple[int, str]:
    """GPUs an instance needs on each of its nodes as SGLang lays it out, and the product that says why; 0 when
    they do not divide over `nnodes`."""
    tp, pp, dp = inst.tp_size, flags.pp_size, flags.replicas
    if flags.dp_attention:
        total, formula = (
            tp * pp * dp,
            f"tp_size {tp} × pp-size {pp}{f' × dp_size {dp}' if dp > 1 else ''} = {tp * pp * dp} (with DP attention, "
            f"the {flags.attention_dp} attention data-parallel ranks run inside the TP group)",
        )
    else:
        total, formula = tp * pp * dp, f"tp_size {tp} × pp-size {pp} × dp_size {dp} = {tp * pp * dp}"
    if inst.nnodes == 1:
        return total, formula
    if total % inst.nnodes:
        return 0, f"{formula} GPU(s), which do not divide over nnodes = {inst.nnodes}"
    return total // inst.nnodes, f"{formula} over nnodes = {inst.nnodes}: {total // inst.nnodes} per node"


def _allocate_gpus(dep: Deployment, flags: dict[str, FlagCheck], findings: list[Finding]) -> dict[str, tuple[int, ...]]:
    """Explicit ids are checked; "auto" instances get free GPUs, largest first, ties by name, lowest ids first."""
    config, count = dep.config, dep.master.gpu_count
    result: dict[str, tuple[int, ...]] = {}
    auto: list[tuple[int, str]] = []
    for inst in dep.instances:
        where = key_path("instances", inst.name, "gpu_ids")
        need, formula = _gpus_needed(inst, flags[inst.name])
        ids = inst.gpu_ids if inst.gpu_ids is not None or count is None else "auto"
        if not flags[inst.name].layout_known:
            continue  # a finding already says what is wrong with the layout; its GPUs wait for the fix
        if not need:
            findings.append(Finding(config, key_path("instances", inst.name, "nnodes"), formula))
        elif ids is None:
            findings.append(Finding(config, where, 'required: list the GPU ids, or set master.gpu_count to use "auto"'))
        elif isinstance(ids, str):  # "auto"
            if count is None:
                findings.append(
                    Finding(config, where, '"auto" needs master.gpu_count (how many GPUs the container has)')
                )
            elif inst.enable:
                auto.append((need, inst.name))
        else:
            if len(ids) != need:
                hint = ""
                if inst.nnodes == 1 and need > (count or LARGEST_NODE) and need % len(ids) == 0:
                    hint = f"; across machines, set nnodes = {need // len(ids)} (gpu_ids are then each node's own)"
                findings.append(Finding(config, where, f"lists {len(ids)} GPU(s) but needs {formula}{hint}"))
            beyond = [g for g in ids if count is not None and g >= count]
            if beyond:
                label = "GPU {} does" if len(beyond) == 1 else "GPUs {} do"
                findings.append(
                    Finding(
                        config,
                        where,
                        (
                            f"{label.format(', '.join(map(str, beyond)))} not exist: master.gpu_count = {count} "
                            f"(ids 0 to {count - 1})"
                        ),
                    )
                )
            if inst.enable or not beyond:
                result[inst.name] = ids
    used = {g for name, ids in result.items() if dep.instance(name).enable for g in ids}
    for need, name in sorted(auto, key=lambda a: (-a[0], a[1])):
        free = [g for g in range(count or 0) if g not in used]
        if len(free) < need:
            findings.append(
                Finding(
                    config,
                    key_path("instances", name, "gpu_ids"),
                    (
                        f'"auto" needs {need} free GPU(s) but only {len(free)} of master.gpu_count = {count} '
                        "are left by the other instances"
                    ),
                )
            )
            continue
        result[name] = tuple(free[:need])
        used.update(free[:need])
    return result


def _allocate_ports(dep: Deployment, findings: list[Finding], reserved: set[int]) -> dict[str, int]:
    """Explicit ports stay; the rest, in name order, get the lowest port ≥ base_port that no instance uses,
    nor the gateway, nor a rendezvous on node 0 (`reserved`)."""
    ports = {i.name: i.port for i in dep.instances if i.port is not None}
    used = set(ports.values()) | reserved
    candidate = dep.master.base_port
    for inst in dep.instances:
        if inst.port is not None or not inst.enable:
            continue
        while candidate in used:
            candidate += 1
        if candidate > 65535:
            findings.append(
                Finding(
                    dep.config,
                    key_path("instances", inst.name, "port"),
                    f"no free port left between master.base_port = {dep.master.base_port} and 65535",
                )
            )
            continue
        ports[inst.name] = candidate
        used.add(candidate)
    return ports


def _resource_graph(dep: Deployment, gpus: dict[str, tuple[int, ...]], ports: dict[str, int]) -> nx.Graph:
    """Enabled instances linked to the GPUs and ports they hold."""
    import networkx as nx

    graph = nx.Graph()
    for inst in dep.instances:
        if not inst.enable:
            continue
        graph.add_node(("instance", inst.name))
        graph.add_edges_from((("instance", inst.name), ("gpu", g)) for g in gpus.get(inst.name, ()))
        if inst.name in ports:
            graph.add_edge(("instance", inst.name), ("port", ports[inst.name]))
    return graph


def _holders(graph: nx.Graph, kind: str) -> t.Iterator[tuple[t.Any, list[str]]]:
    for node in sorted(n for n in graph if n[0] == kind):
        names = sorted(n[1] for n in graph.neighbors(node))
        if len(names) > 1:
            yield node[1], names


def _check_gpu_sharing(dep: Deployment, graph: nx.Graph, findings: list[Finding]) -> set[tuple[str, ...]]:
    """Groups of enabled instances that share a GPU; a finding unless their memory fractions fit together."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for gpu, holders in _holders(graph, "gpu"):
        groups.setdefault(tuple(holders), []).append(gpu)
    for names, gpu_list in sorted(groups.items()):
        fractions = {n: dep.instance(n).mem_fraction_static for n in names}
        total = sum(f or 0 for f in fractions.values())
        if all(f is not None for f in fractions.values()) and total <= SHARED_GPU_MEMORY + 1e-9:
            continue
        shown = " + ".join(f"{n} {fractions[n] if fractions[n] is not None else 'unset'}" for n in names)
        label = "GPU" if len(gpu_list) == 1 else "GPUs"
        findings.append(
            Finding(
                dep.config,
                key_path("instances", names[-1], "gpu_ids"),
                (
                    f"{label} {', '.join(map(str, gpu_list))} shared with {', '.join(map(show, names[:-1]))}: instances on "
                    f"one GPU must all set mem_fraction_static with a sum of at most {SHARED_GPU_MEMORY} (now {shown})"
                ),
            )
        )
    return set(groups)


def _check_port_sharing(dep: Deployment, graph: nx.Graph, findings: list[Finding]) -> None:
    """Each instance whose port an instance before it (by name) already holds on an overlapping host: one
    finding, naming the first such instance (linear: no pair of instances is compared twice)."""
    for port, names in _holders(graph, "port"):
        first_any = first_wildcard = None
        first_on: dict[str, str] = {}
        for b in names:
            host_b = dep.instance(b).host
            hb = _host(host_b)
            earlier = [first_on.get(hb), first_wildcard, first_any if hb in ANY_HOSTS else None]
            a = min((n for n in earlier if n is not None), default=None)
            if a is not None:
                host_a = dep.instance(a).host
                hosts = (
                    f"both on host {show(host_a)}"
                    if host_a == host_b
                    else (f"hosts {show(host_a)} and {show(host_b)} overlap")
                )
                findings.append(
                    Finding(
                        dep.config, key_path("instances", b, "port"), f"port {port} is also used by {show(a)} ({hosts})"
                    )
                )
            first_any = first_any or b
            first_on.setdefault(hb, b)
            if hb in ANY_HOSTS:
                first_wildcard = first_wildcard or b


def _host(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def _dependencies(dep: Deployment, findings: list[Finding]) -> list[tuple[str, str]]:
    """Edges dependency → dependant; unknown names and disabled targets are findings."""
    config = dep.config
    names = [i.name for i in dep.instances]
    edges = []
    for inst in dep.instances:
        where = key_path("instances", inst.name, "depends_on")
        for target in inst.depends_on:
            if target not in names:
                close = difflib.get_close_matches(target, names, n=1)
                hint = f"; did you mean {show(close[0])}?" if close else ""
                findings.append(Finding(config, where, f"{show(target)} is not an instance of this config{hint}"))
                continue
            if inst.enable and not dep.instance(target).enable:
                findings.append(
                    Finding(config, where, f"{show(target)} is disabled (enable = false), so it never becomes ready")
                )
            edges.append((target, inst.name))
    return edges


def _dependency_graph(dep: Deployment, edges: list[tuple[str, str]], findings: list[Finding]) -> nx.DiGraph:
    """The depends_on graph of every instance; each cycle is a finding that prints it."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(i.name for i in dep.instances)
    graph.add_edges_from(edges)
    for cycle in _cycles(graph):
        steps = list(reversed([*cycle, cycle[0]]))
        if len(steps) > 12:  # a long cycle is cut in the middle: its ends say where to look
            steps = [*steps[:6], f"… ({len(cycle) - 9} more) …", *steps[-4:]]
        loop = " → ".join(steps)
        message = f"{show(cycle[0])} depends on itself" if len(cycle) == 1 else f"dependency cycle: {loop}"
        findings.append(Finding(dep.config, key_path("instances", cycle[0], "depends_on"), message))
    return graph


def _cycles(graph: nx.DiGraph, limit: int = 20) -> list[list[str]]:
    import networkx as nx

    cycles = []
    for cycle in itertools.islice(nx.simple_cycles(graph), limit):
        start = cycle.index(min(cycle))
        cycles.append(cycle[start:] + cycle[:start])
    return sorted(cycles)


def _waves(
    dep: Deployment, deps: nx.DiGraph, shares: set[tuple[str, ...]]
) -> tuple[dict[str, int], dict[str, tuple[str, ...]]]:
    """Start waves: lexicographic topological generations of dependencies plus GPU sharing (earlier one first)."""
    import networkx as nx

    enabled = [i.name for i in dep.instances if i.enable]
    graph = nx.DiGraph(deps.subgraph(enabled))
    if not nx.is_directed_acyclic_graph(graph):
        return {}, {}
    rank = {name: r for r, name in enumerate(nx.lexicographical_topological_sort(graph))}
    # instances on one GPU start one after the other, in the order of the dependencies (then by name): a chain,
    # each waiting for the one before it (linear in the group's size, where all pairs would be quadratic)
    for group in shares:
        ordered = sorted(group, key=rank.__getitem__)
        graph.add_edges_from(itertools.pairwise(ordered))
    waves = {name: w for w, generation in enumerate(nx.topological_generations(graph), 1) for name in generation}
    wait_for = {name: tuple(sorted(graph.predecessors(name))) for name in enabled}
    return waves, wait_for
