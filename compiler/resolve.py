"""Cross-checks and allocation on graphs: GPUs, ports, depends_on; start waves; the final argv of every instance."""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import re
import typing as t

from sglangc.catalog import Catalog, FlagCheck, check_parsers, check_server_args, check_server_args_env
from sglangc.errors import MAX_FINDINGS, Finding, key_path, show
from sglangc.model import Deployment, Download, Instance, Master

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
    download: Download | None = None  # where download-models.sh fetches the weights from; None: they are local

    @property
    def memory_percent(self) -> int:
        return round(self.memory_fraction * 100)


@dataclasses.dataclass(frozen=True)
class Plan:
    deployment: Deployment
    units: tuple[LaunchUnit, ...]  # every instance, by name
    settle_seconds: int  # how long supervisord may take to call a start RUNNING or FATAL

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
        return dataclasses.replace(self, deployment=dataclasses.replace(self.deployment, master=master), units=units)


def resolve(dep: Deployment, catalog: Catalog) -> tuple[Plan, list[Finding]]:
    findings: list[Finding] = []
    flags = {}
    for inst in dep.instances:
        flags[inst.name], own = check_instance(inst, catalog, dep.config)
        findings += own
        if sum(f.severity == "error" for f in findings) > MAX_FINDINGS:
            return Plan(dep, (), 0), findings  # checked no further (sort_findings says so)

    gpus = _allocate_gpus(dep, flags, findings)
    ports = _allocate_ports(dep, findings)
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

    units = tuple(
        LaunchUnit(
            name=i.name,
            enabled=i.enable,
            autostart=i.autostart,
            boot=i.enable and i.autostart and dep.master.enable,
            model_path=i.model_path,
            served_model_name=i.served_model_name or i.model_path,
            host=i.host,
            port=ports.get(i.name),
            gpu_ids=gpus.get(i.name, ()),
            wave=waves.get(i.name),
            depends_on=i.depends_on,
            wait_for=wait_for.get(i.name, ()),
            argv=_argv(dep, i, ports.get(i.name), flags[i.name]),
            env=i.env,
            api_key_env=i.api_key_env,
            secret_envs=_secret_envs(i),
            program=PROGRAM_PREFIX + i.name,
            priority=100 + 10 * (waves.get(i.name) or 0),
            probe_host=WILDCARD_PROBE.get(i.host, i.host),
            exports=_exports(i, gpus.get(i.name, ())),
            highest_gpu=max(gpus.get(i.name, ()), default=None),
            weight_split=i.tp_size * flags[i.name].pp_size,
            memory_fraction=i.mem_fraction_static if i.mem_fraction_static is not None else AUTO_MEMORY_FRACTION,
            **_files(dep.master, i.name, bool(_secret_envs(i))),
            download=i.download,
        )
        for i in dep.instances
    )
    master = dep.master
    settle = (master.start_seconds + master.start_retries + 2) * (master.start_retries + 1) + 5
    findings += _check_runnable(dep, units)
    return Plan(deployment=dep, units=units, settle_seconds=settle), findings


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


def _argv(dep: Deployment, i: Instance, port: int | None, flags: FlagCheck) -> tuple[str, ...]:
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
    return (*argv, *flags.argv)


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
    """GPUs an instance needs, and the product that says why (DP attention runs inside the TP group)."""
    tp, pp, dp = inst.tp_size, flags.pp_size, inst.dp_size
    if flags.dp_attention:
        return (
            tp * pp,
            f"tp_size {tp} × pp-size {pp} = {tp * pp} (with DP attention, data-parallel ranks run inside the TP group)",
        )
    return tp * pp * dp, f"tp_size {tp} × pp-size {pp} × dp_size {dp} = {tp * pp * dp}"


def _allocate_gpus(dep: Deployment, flags: dict[str, FlagCheck], findings: list[Finding]) -> dict[str, tuple[int, ...]]:
    """Explicit ids are checked; "auto" instances get free GPUs, largest first, ties by name, lowest ids first."""
    config, count = dep.config, dep.master.gpu_count
    result: dict[str, tuple[int, ...]] = {}
    auto: list[tuple[int, str]] = []
    for inst in dep.instances:
        where = key_path("instances", inst.name, "gpu_ids")
        need, formula = _gpus_needed(inst, flags[inst.name])
        ids = inst.gpu_ids if inst.gpu_ids is not None or count is None else "auto"
        if ids is None:
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
                findings.append(Finding(config, where, f"lists {len(ids)} GPU(s) but needs {formula}"))
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


def _allocate_ports(dep: Deployment, findings: list[Finding]) -> dict[str, int]:
    """Explicit ports stay; the rest, in name order, get the lowest port ≥ base_port that no instance uses."""
    ports = {i.name: i.port for i in dep.instances if i.port is not None}
    used = set(ports.values())
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
