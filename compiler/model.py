"""Typed, frozen values of a schema-clean config, defaults applied. No raw dict travels past here."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import typing as t

from sglangc.load import SourceDoc

Scalar = str | int | float | bool


@dataclasses.dataclass(frozen=True)
class Master:
    enable: bool = True
    pixi_project_dir: str = "/hard/volume/workspace/sglang-pixi-offline"
    pixi_environment: str = "default"
    log_dir: str = "/tmp"
    runtime_dir: str = "/run/sglangc"
    gpu_count: int | None = None
    base_port: int = 30000
    start_seconds: int = 10
    start_retries: int = 3
    stop_timeout: int = 120
    ready_timeout: int = 1800
    cache_dir: str | None = None  # None: <pixi project dir>/.cache/sglang, resolved at launch
    models_dir: str = "/hard/volume/workspace/llm-models"  # downloads without a model_path: <models_dir>/<repo>


@dataclasses.dataclass(frozen=True)
class BundleDefaults:
    """The [bundle] table: where the installer finds the bundle, and its optional checksum pin."""

    path: str = "/hard/volume/workspace/sglang-offline-bundle.tar"
    sha256: str = ""


@dataclasses.dataclass(frozen=True)
class K8s:
    """The [k8s] table: what `compile --target k8s-lws` needs beyond the instances."""

    image: str | None = None  # None: lmsysorg/sglang:v<sglang_version>
    namespace: str = "default"
    model_claim: str = "models"
    cache_claim: str = "sglang-cache"  # "": an emptyDir
    api_key_secret: str = "sglang-api-key"
    hf_token_secret: str | None = None
    gateway_service_type: str = "ClusterIP"  # the type of the gateway's Service


@dataclasses.dataclass(frozen=True)
class Gateway:
    """The [gateway] table: SGLang's model gateway (smg) in front of every instance."""

    enable: bool = False
    host: str = "0.0.0.0"
    port: int = 30000
    policy: str = "cache_aware"
    api_key_env: str | None = None
    control_plane_api_key_env: str | None = None
    server_args: tuple[tuple[str, t.Any], ...] = ()  # sorted by flag, values as TOML gave them


@dataclasses.dataclass(frozen=True)
class Download:
    """An instance's [instances.<name>.download] table: where download-models.sh fetches its weights from."""

    repo: str
    source: str = "huggingface"
    revision: str = "main"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    token_env: str | None = None

    @property
    def pinned(self) -> bool:
        """Whether the revision is a commit id (40 hex digits): the model it names never changes."""
        return bool(_COMMIT.fullmatch(self.revision))


_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclasses.dataclass(frozen=True)
class Instance:
    name: str
    model_path: str
    enable: bool = True
    autostart: bool = True
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    gpu_ids: tuple[int, ...] | t.Literal["auto"] | None = None  # None: not given
    tp_size: int = 1
    dp_size: int = 1
    reasoning_parser: str | None = None
    tool_call_parser: str | None = None
    trust_remote_code: bool = False
    mem_fraction_static: float | None = None
    api_key_env: str | None = None
    depends_on: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # sorted by name, values as strings
    server_args: tuple[tuple[str, t.Any], ...] = ()  # sorted by flag, values as TOML gave them
    server_args_env: tuple[tuple[str, str], ...] = ()  # flag → the variable holding its secret value, sorted
    nnodes: int = 1  # machines the instance spans (SGLang's --nnodes)
    dist_init_addr: str | None = None  # node 0's HOST:PORT for the rendezvous, or:
    dist_init_addr_env: str | None = None  # the variable holding it at launch
    replicas: int = 1
    replica_gpu_ids: tuple[tuple[int, ...], ...] | None = None  # gpu_ids given as one list per replica
    replica_of: str | None = None  # set on the copies resolve makes of an instance with replicas: its name
    sglang_config: str | None = None  # SGLang's own YAML config, as the TOML names it
    sglang_config_args: tuple[tuple[str, t.Any], ...] = ()  # its entries (read at compile time), sorted by key
    download: Download | None = None


@dataclasses.dataclass(frozen=True)
class Deployment:
    config: str  # the config file as named on the command line
    config_sha256: str
    sglang_version: str
    master: Master
    bundle: BundleDefaults  # the installer's defaults ([bundle])
    instances: tuple[Instance, ...]  # sorted by name
    k8s: K8s = K8s()
    gateway: Gateway = Gateway()

    def instance(self, name: str) -> Instance:
        return self._by_name[name]

    @functools.cached_property
    def _by_name(self) -> dict[str, Instance]:
        return {i.name: i for i in self.instances}


def build(doc: SourceDoc, default_sglang_version: t.Callable[[str], str]) -> Deployment:
    """The Deployment of a config that passed `validate` (so every key and type is known to be right).

    `default_sglang_version(pixi_environment)` gives the SGLang version when the config names none.
    """
    data = doc.data
    master = Master(**data.get("master", {}))
    return Deployment(
        config=doc.config,
        config_sha256=hashlib.sha256(doc.raw).hexdigest(),
        sglang_version=data.get("sglang_version") or default_sglang_version(master.pixi_environment),
        master=master,
        bundle=BundleDefaults(**data.get("bundle", {})),
        instances=tuple(
            build_instance(name, data["instances"][name], master.models_dir) for name in sorted(data["instances"])
        ),
        k8s=K8s(**data.get("k8s", {})),
        gateway=build_gateway(data.get("gateway", {})),
    )


def build_gateway(raw: dict[str, t.Any]) -> Gateway:
    fields = dict(raw)
    return Gateway(server_args=tuple(sorted(fields.pop("server_args", {}).items())), **fields)


def build_instance(name: str, raw: dict[str, t.Any], models_dir: str = Master.models_dir) -> Instance:
    """One instance from its schema-clean table (a download without model_path lands in models_dir)."""
    fields = dict(raw)
    gpu_ids = fields.pop("gpu_ids", None)
    nested = isinstance(gpu_ids, list) and any(isinstance(g, list) for g in gpu_ids)
    if "download" in fields:
        table = dict(fields.pop("download"))
        table.setdefault("revision", "master" if table.get("source") == "modelscope" else "main")  # the hub's default
        download = Download(include=tuple(table.pop("include", ())), exclude=tuple(table.pop("exclude", ())), **table)
        fields["download"] = download
        fields.setdefault("model_path", f"{models_dir.rstrip('/')}/{download.repo}")
    return Instance(
        name=name,
        gpu_ids=None if nested else tuple(gpu_ids) if isinstance(gpu_ids, list) else gpu_ids,
        replica_gpu_ids=tuple(tuple(g) for g in gpu_ids) if nested and gpu_ids else None,
        depends_on=tuple(fields.pop("depends_on", ())),
        env=tuple(sorted((k, env_string(v)) for k, v in fields.pop("env", {}).items())),
        server_args=tuple(sorted(fields.pop("server_args", {}).items())),
        server_args_env=tuple(sorted(fields.pop("server_args_env", {}).items())),
        **fields,
    )


def env_string(value: Scalar) -> str:
    """How an `env` value is written: booleans as true/false, numbers as TOML wrote them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
