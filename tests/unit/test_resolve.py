"""Resolution through the public entry point: `sglangc.pipeline.check(path)` → `.plan` and `.findings`.

Allocation (ports, GPUs), start waves, cycles, `wait_for`, the argv of every instance and determinism.
Configs pin `sglang_version = "0.5.23"`, whose flag catalog the argv tests rely on.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from sglangc.pipeline import Checked, check
from sglangc.report import plan_json

HEADER = 'version = 1\nsglang_version = "0.5.23"\n'
LATEST = 'pixi_environment = "latest"'


@pytest.fixture
def resolve(tmp_path: Path) -> t.Callable[..., Checked]:
    def run(body: str, name: str = "config.toml") -> Checked:
        path = tmp_path / name
        # the version 0.5.23 is what the template's `latest` environment installs
        text = (
            body.replace("[master]\n", f"[master]\n{LATEST}\n", 1)
            if "[master]\n" in body
            else f"[master]\n{LATEST}\n{body}"
        )
        path.write_text(HEADER + text, encoding="utf-8")
        return check(path)

    return run


def ok(result: Checked) -> dict[str, t.Any]:
    """The plan's units by name, after asserting that the config has no errors."""
    assert not result.errors, "\n".join(map(str, result.findings))
    assert result.plan is not None
    return {u.name: u for u in result.plan.units}


def errors(result: Checked) -> list[tuple[str, str]]:
    assert result.plan is None
    return [(f.key, f.message) for f in result.errors]


def instances(*specs: str) -> str:
    """`[instances.<name>]` tables from "name: key = value; key = value" specs (model_path filled in)."""
    out = []
    for spec in specs:
        name, _, rest = spec.partition(":")
        out.append(f'[instances.{name.strip()}]\nmodel_path = "/llm-models/{name.strip()}"')
        out += [line.strip() for line in rest.split(";") if line.strip()]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- ports


def test_ports_in_name_order_from_base_port(resolve):
    units = ok(
        resolve("[master]\nbase_port = 31000\n" + instances("c: gpu_ids = [2]", "a: gpu_ids = [0]", "b: gpu_ids = [1]"))
    )
    assert {n: u.port for n, u in units.items()} == {"a": 31000, "b": 31001, "c": 31002}


def test_explicit_ports_are_reserved_first(resolve):
    units = ok(
        resolve(
            instances(
                "a: gpu_ids = [0]",
                "b: gpu_ids = [1]",
                "c: gpu_ids = [2]; port = 30000",
                "d: gpu_ids = [3]; port = 30002",
            )
        )
    )
    assert {n: u.port for n, u in units.items()} == {"a": 30001, "b": 30003, "c": 30000, "d": 30002}


def test_default_base_port_is_30000(resolve):
    assert ok(resolve(instances("a: gpu_ids = [0]")))["a"].port == 30000


def test_disabled_instances_get_no_port_and_take_none(resolve):
    units = ok(resolve(instances("a: gpu_ids = [0]; enable = false", "b: gpu_ids = [1]")))
    assert units["a"].port is None
    assert units["b"].port == 30000
    assert "--port" not in units["a"].argv


def test_port_clash_needs_overlapping_hosts(resolve):
    same = resolve(instances("a: gpu_ids = [0]; port = 30000", "b: gpu_ids = [1]; port = 30000"))
    assert errors(same) == [("instances.b.port", 'port 30000 is also used by "a" (both on host "127.0.0.1")')]
    anyhost = resolve(
        instances(
            'a: gpu_ids = [0]; port = 30000; host = "10.1.1.1"',
            'b: gpu_ids = [1]; port = 30000; host = "0.0.0.0"; api_key_env = "K"',
        )
    )
    assert [k for k, _ in errors(anyhost)] == ["instances.b.port"]
    apart = ok(
        resolve(
            instances(
                'a: gpu_ids = [0]; port = 30000; host = "10.1.1.1"', 'b: gpu_ids = [1]; port = 30000; host = "10.1.1.2"'
            )
        )
    )
    assert apart["a"].port == apart["b"].port == 30000


def test_disabled_instance_does_not_clash(resolve):
    units = ok(resolve(instances("a: gpu_ids = [0]; port = 30000", "b: gpu_ids = [0]; port = 30000; enable = false")))
    assert units["a"].enabled and not units["b"].enabled


# --------------------------------------------------------------------------- GPUs


def gpus(units: dict[str, t.Any]) -> dict[str, tuple[int, ...]]:
    return {n: u.gpu_ids for n, u in units.items()}


def test_auto_packs_largest_first(resolve):
    units = ok(resolve("[master]\ngpu_count = 8\n" + instances("a: tp_size = 1", "b: tp_size = 4", "c: tp_size = 2")))
    assert gpus(units) == {"a": (6,), "b": (0, 1, 2, 3), "c": (4, 5)}


def test_auto_ties_by_name(resolve):
    units = ok(resolve("[master]\ngpu_count = 4\n" + instances("zz: tp_size = 2", "aa: tp_size = 2")))
    assert gpus(units) == {"aa": (0, 1), "zz": (2, 3)}


def test_auto_counts_dp_and_pp(resolve):
    units = ok(
        resolve(
            "[master]\ngpu_count = 8\n"
            + instances("a: tp_size = 1", 'b: tp_size = 1; dp_size = 2; server_args = { "pp-size" = 2 }')
        )
    )
    assert gpus(units) == {"a": (4,), "b": (0, 1, 2, 3)}


def test_auto_with_dp_attention_needs_tp_times_pp(resolve):
    units = ok(
        resolve(
            "[master]\ngpu_count = 8\n"
            + instances('a: gpu_ids = "auto"; tp_size = 4; server_args = { "attn-dp-size" = 4 }')
        )
    )
    assert gpus(units) == {"a": (0, 1, 2, 3)}


def test_explicit_ids_are_reserved_before_auto(resolve):
    units = ok(
        resolve(
            "[master]\ngpu_count = 6\n"
            + instances("a: tp_size = 2", "b: gpu_ids = [0, 2]; tp_size = 2", "c: tp_size = 1")
        )
    )
    assert gpus(units) == {"a": (1, 3), "b": (0, 2), "c": (4,)}


def test_omitted_gpu_ids_mean_auto_when_gpu_count_is_set(resolve):
    units = ok(resolve("[master]\ngpu_count = 2\n" + instances("a:", 'b: gpu_ids = "auto"')))
    assert gpus(units) == {"a": (0,), "b": (1,)}


def test_disabled_instances_hold_no_gpus(resolve):
    units = ok(
        resolve(
            "[master]\ngpu_count = 2\n"
            + instances(
                "a: enable = false; tp_size = 2", "b: gpu_ids = [0, 1]; tp_size = 2; enable = false", "c: tp_size = 2"
            )
        )
    )
    assert units["a"].gpu_ids == ()
    assert units["c"].gpu_ids == (0, 1)


def test_auto_that_does_not_fit_is_a_finding(resolve):
    result = resolve("[master]\ngpu_count = 4\n" + instances("a: tp_size = 4", "b: tp_size = 1"))
    assert errors(result) == [
        (
            "instances.b.gpu_ids",
            ('"auto" needs 1 free GPU(s) but only 0 of master.gpu_count = 4 are left by the other instances'),
        )
    ]


def test_gpu_count_mismatch_names_the_formula(resolve):
    result = resolve(
        instances(
            'a: gpu_ids = [0, 1]; tp_size = 2; server_args = { "enable-dp-attention" = true }; dp_size = 2',
            "b: gpu_ids = [2, 3]; tp_size = 2; dp_size = 2",
        )
    )
    assert errors(result) == [
        ("instances.b.gpu_ids", "lists 2 GPU(s) but needs tp_size 2 × pp-size 1 × dp_size 2 = 4"),
    ]


# --------------------------------------------------------------------------- waves


def waves(units: dict[str, t.Any]) -> dict[str, int | None]:
    return {n: u.wave for n, u in units.items()}


def test_independent_instances_start_together(resolve):
    units = ok(resolve(instances("a: gpu_ids = [0]", "b: gpu_ids = [1]", "c: gpu_ids = [2]")))
    assert waves(units) == {"a": 1, "b": 1, "c": 1}
    assert all(u.wait_for == () for u in units.values())


def test_chain(resolve):
    units = ok(
        resolve(
            instances(
                'a: gpu_ids = [0]; depends_on = ["b"]', 'b: gpu_ids = [1]; depends_on = ["c"]', "c: gpu_ids = [2]"
            )
        )
    )
    assert waves(units) == {"a": 3, "b": 2, "c": 1}
    assert units["a"].wait_for == ("b",)
    assert units["a"].depends_on == ("b",)


def test_diamond(resolve):
    units = ok(
        resolve(
            instances(
                "top: gpu_ids = [0]",
                'left: gpu_ids = [1]; depends_on = ["top"]',
                'right: gpu_ids = [2]; depends_on = ["top"]',
                'bottom: gpu_ids = [3]; depends_on = ["right", "left"]',
            )
        )
    )
    assert waves(units) == {"top": 1, "left": 2, "right": 2, "bottom": 3}
    assert units["bottom"].wait_for == ("left", "right")
    assert units["bottom"].depends_on == ("right", "left")  # as written


def test_gpu_sharing_splits_waves(resolve):
    units = ok(
        resolve(
            instances(
                "a: gpu_ids = [0]; mem_fraction_static = 0.4",
                "b: gpu_ids = [0]; mem_fraction_static = 0.5",
                "c: gpu_ids = [1]",
            )
        )
    )
    assert waves(units) == {"a": 1, "b": 2, "c": 1}
    assert units["b"].wait_for == ("a",)
    assert units["b"].depends_on == ()


def test_gpu_sharing_follows_depends_on_against_name_order(resolve):
    units = ok(
        resolve(
            instances(
                'a: gpu_ids = [0]; mem_fraction_static = 0.45; depends_on = ["b"]',
                "b: gpu_ids = [0]; mem_fraction_static = 0.45",
            )
        )
    )
    assert waves(units) == {"a": 2, "b": 1}
    assert units["a"].wait_for == ("b",)
    assert units["b"].wait_for == ()


def test_three_instances_on_one_gpu_start_one_by_one(resolve):
    units = ok(resolve(instances(*(f"{n}: gpu_ids = [0]; mem_fraction_static = 0.3" for n in "abc"))))
    assert waves(units) == {"a": 1, "b": 2, "c": 3}
    assert units["c"].wait_for == ("b",)  # a chain: b itself waits for a


def test_many_instances_on_one_gpu_or_port_stay_linear(resolve):
    """1000 instances on one GPU: a chain of 999 waits, not 499,500 pairs; 1000 on one port: one finding each,
    of which the first 100 are shown."""
    many = "[master]\ngpu_count = 1\n" + "".join(
        f'[instances.i{i:04d}]\nmodel_path = "/m"\ngpu_ids = [0]\nmem_fraction_static = 0.0009\n'
        f'port = 30000\nhost = "10.0.{i // 250}.{i % 250}"\n'
        for i in range(1000)
    )
    units = ok(resolve(many))
    assert sum(len(u.wait_for) for u in units.values()) == 999
    assert units["i0999"].wave == 1000
    clash = resolve(many.replace('host = "10.0.0.0"', 'host = "0.0.0.0"'))
    ports = [f for f in clash.errors if f.key.endswith(".port")]
    assert len(ports) == 100 and all('used by "i0000"' in f.message for f in ports)
    assert clash.errors[-1].message.startswith("too many findings: the first 100 are shown; the check stopped")


def test_gpu_sharing_needs_memory_fractions(resolve):
    unset = resolve(instances("a: gpu_ids = [0]", "b: gpu_ids = [0]; mem_fraction_static = 0.3"))
    assert [k for k, _ in errors(unset)] == ["instances.b.gpu_ids"]
    too_much = resolve(
        instances("a: gpu_ids = [0]; mem_fraction_static = 0.5", "b: gpu_ids = [0]; mem_fraction_static = 0.41")
    )
    assert "at most 0.9" in errors(too_much)[0][1]
    exactly = ok(
        resolve(instances("a: gpu_ids = [0]; mem_fraction_static = 0.5", "b: gpu_ids = [0]; mem_fraction_static = 0.4"))
    )
    assert waves(exactly) == {"a": 1, "b": 2}


def test_disabled_instances_have_no_wave(resolve):
    units = ok(resolve(instances("a: gpu_ids = [0]", "b: gpu_ids = [0]; enable = false")))
    assert waves(units) == {"a": 1, "b": None}


# --------------------------------------------------------------------------- cycles and bad dependencies


def test_two_cycle_is_printed(resolve):
    result = resolve(instances('a: gpu_ids = [0]; depends_on = ["b"]', 'b: gpu_ids = [1]; depends_on = ["a"]'))
    assert errors(result) == [("instances.a.depends_on", "dependency cycle: a → b → a")]


def test_three_cycle_is_printed_in_dependency_order(resolve):
    result = resolve(
        instances(
            'a: gpu_ids = [0]; depends_on = ["c"]',
            'b: gpu_ids = [1]; depends_on = ["a"]',
            'c: gpu_ids = [2]; depends_on = ["b"]',
            'd: gpu_ids = [3]; depends_on = ["a"]',
        )
    )
    assert errors(result) == [("instances.a.depends_on", "dependency cycle: a → c → b → a")]


def test_self_dependency(resolve):
    result = resolve(instances('a: gpu_ids = [0]; depends_on = ["a"]'))
    assert errors(result) == [("instances.a.depends_on", '"a" depends on itself')]


def test_two_separate_cycles_are_both_reported(resolve):
    result = resolve(
        instances(
            'a: gpu_ids = [0]; depends_on = ["b"]',
            'b: gpu_ids = [1]; depends_on = ["a"]',
            'x: gpu_ids = [2]; depends_on = ["y"]',
            'y: gpu_ids = [3]; depends_on = ["x"]',
        )
    )
    assert [m for _, m in errors(result)] == ["dependency cycle: a → b → a", "dependency cycle: x → y → x"]


def test_unknown_and_disabled_dependencies(resolve):
    result = resolve(
        instances(
            'chat: gpu_ids = [0]; depends_on = ["embedd", "off"]',
            "embed: gpu_ids = [1]",
            "off: gpu_ids = [2]; enable = false",
        )
    )
    assert errors(result) == [
        ("instances.chat.depends_on", '"embedd" is not an instance of this config; did you mean "embed"?'),
        ("instances.chat.depends_on", '"off" is disabled (enable = false), so it never becomes ready'),
    ]


def test_disabled_instance_may_depend_on_a_disabled_one(resolve):
    units = ok(
        resolve(instances("a: gpu_ids = [0]; enable = false", 'b: gpu_ids = [1]; enable = false; depends_on = ["a"]'))
    )
    assert waves(units) == {"a": None, "b": None}


# --------------------------------------------------------------------------- argv


def test_argv_typed_fields_in_order(resolve):
    units = ok(
        resolve(
            instances(
                'a: gpu_ids = [0, 1]; tp_size = 2; served_model_name = "glm"; host = "0.0.0.0"; port = 31000; '
                'reasoning_parser = "glm45"; tool_call_parser = "glm47"; trust_remote_code = true; '
                'mem_fraction_static = 0.85; api_key_env = "SGLANG_API_KEY"'
            )
        )
    )
    assert units["a"].argv == (
        "--model-path",
        "/llm-models/a",
        "--served-model-name",
        "glm",
        "--host",
        "0.0.0.0",
        "--port",
        "31000",
        "--tp-size",
        "2",
        "--dp-size",
        "1",
        "--reasoning-parser",
        "glm45",
        "--tool-call-parser",
        "glm47",
        "--trust-remote-code",
        "--mem-fraction-static",
        "0.85",
        "--config",
        "/run/sglangc/secrets/a.yaml",
    )
    assert units["a"].api_key_env == "SGLANG_API_KEY"


def test_argv_defaults_are_minimal(resolve):
    units = ok(resolve(instances("a: gpu_ids = [0]; trust_remote_code = false")))
    assert units["a"].argv == (
        "--model-path",
        "/llm-models/a",
        "--host",
        "127.0.0.1",
        "--port",
        "30000",
        "--tp-size",
        "1",
        "--dp-size",
        "1",
    )
    assert units["a"].served_model_name == "/llm-models/a"


def test_argv_server_args_sorted_after_typed_fields(resolve):
    units = ok(
        resolve(
            instances(
                'a: gpu_ids = [0]; server_args = { "load-format" = "safetensors", "context-length" = 131072, '
                '"chunked-prefill-size" = -1 }'
            )
        )
    )
    assert units["a"].argv[10:] == (
        "--chunked-prefill-size",
        "-1",
        "--context-length",
        "131072",
        "--load-format",
        "safetensors",
    )


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('"enable-metrics" = true', ["--enable-metrics"]),  # store_true on
        ('"enable-metrics" = false', []),  # store_true off: omitted
        ('"enable-tf32-matmul" = true', ["--enable-tf32-matmul"]),  # BooleanOptionalAction on
        ('"enable-tf32-matmul" = false', ["--no-enable-tf32-matmul"]),  # BooleanOptionalAction off
        ('"no-enable-tf32-matmul" = true', ["--no-enable-tf32-matmul"]),  # the negative spelling
        ('"no-enable-tf32-matmul" = false', ["--enable-tf32-matmul"]),
        ('"cuda-graph-bs-decode" = [1, 2, 8]', ["--cuda-graph-bs-decode", "1", "2", "8"]),  # list: several words
        ('"cuda-graph-bs-decode" = 4', ["--cuda-graph-bs-decode", "4"]),  # one value for a list flag
        ('"lora-paths" = []', ["--lora-paths"]),  # nargs="*" may be empty
        (
            '"default-chat-template-kwargs" = { enable_thinking = false, n = 2, s = "é" }',
            ["--default-chat-template-kwargs", '{"enable_thinking":false,"n":2,"s":"é"}'],
        ),  # table → compact JSON text
        (
            '"default-chat-template-kwargs" = \'{"a": 1}\'',
            ["--default-chat-template-kwargs", '{"a": 1}'],
        ),  # JSON string
        ('"forward-hooks" = ["x", 1]', ["--forward-hooks", '["x",1]']),  # list for a JSON-list flag
        ('"context-length" = "128k"', ["--context-length", "128k"]),
        ('"schedule-conservativeness" = 1', ["--schedule-conservativeness", "1"]),  # int for a float flag
        ('"schedule-conservativeness" = 0.25', ["--schedule-conservativeness", "0.25"]),
        ('"schedule-conservativeness" = -1e-5', ["--schedule-conservativeness", "-0.00001"]),  # no flag-like "-1e-05"
        ('"chunked-prefill-size" = -1', ["--chunked-prefill-size", "-1"]),  # negative numbers are values
        ('"load-format" = "safetensors"', ["--load-format", "safetensors"]),
        ('"pp-size" = 1', ["--pp-size", "1"]),
        ('"attention-data-parallel-size" = 1', ["--attention-data-parallel-size", "1"]),  # alias kept as written
    ],
)
def test_argv_server_arg_words(resolve, toml: str, words: list[str]):
    units = ok(resolve(instances(f"a: gpu_ids = [0]; server_args = {{ {toml} }}")))
    assert list(units["a"].argv[10:]) == words


def test_argv_strings_go_through_byte_for_byte(resolve):
    units = ok(
        resolve(
            "[instances.a]\n"
            'model_path = "/m/it\'s \\"q\\" $(id) `id` %(x)s ; # ünï  two \\\\"\n'
            "served_model_name = 'a;b # c %'\n"
            "gpu_ids = [0]\n"
            'server_args = { "chat-template" = "{{ x }} $HOME" }\n'
        )
    )
    assert units["a"].model_path == '/m/it\'s "q" $(id) `id` %(x)s ; # ünï  two \\'
    assert units["a"].argv[:4] == ("--model-path", units["a"].model_path, "--served-model-name", "a;b # c %")
    assert units["a"].argv[-2:] == ("--chat-template", "{{ x }} $HOME")


def test_api_key_never_in_argv_or_plan(resolve):
    result = resolve(instances('a: gpu_ids = [0]; api_key_env = "MY_KEY"; env = { HF_TOKEN = "hf_secret_value" }'))
    units = ok(result)
    assert "--api-key" not in units["a"].argv
    doc = json.loads(plan_json(result.plan))
    assert doc["instances"][0]["env"] == {"HF_TOKEN": "<redacted>"}
    assert "hf_secret_value" not in plan_json(result.plan)


def test_env_values_are_strings(resolve):
    units = ok(resolve(instances('a: gpu_ids = [0]; env = { N = 3, F = 0.5, T = true, S = "x y" }')))
    assert units["a"].env == (("F", "0.5"), ("N", "3"), ("S", "x y"), ("T", "true"))


# --------------------------------------------------------------------------- determinism


BIG = "[master]\ngpu_count = 8\n" + instances(
    'z: tp_size = 2; depends_on = ["a"]; server_args = { "enable-metrics" = true, "context-length" = 4096 }',
    'a: tp_size = 2; env = { B = "1", A = "2" }',
    "m: gpu_ids = [7]; mem_fraction_static = 0.4",
    "n: gpu_ids = [7]; mem_fraction_static = 0.4",
    'q: tp_size = 1; server_args = { "default-chat-template-kwargs" = { b = 1, a = 2 } }',
)


def test_same_config_twice_gives_the_same_plan(resolve):
    first = plan_json(resolve(BIG).plan)
    second = plan_json(resolve(BIG).plan)
    assert first == second


def test_plan_does_not_depend_on_table_order(resolve):
    tables = BIG.split("[instances.")
    reordered = tables[0] + "".join("[instances." + s for s in reversed(tables[1:]))
    first = json.loads(plan_json(resolve(BIG, "one.toml").plan))["instances"]
    second = json.loads(plan_json(resolve(reordered, "two.toml").plan))["instances"]
    assert first == second
    assert [i["name"] for i in first] == ["a", "m", "n", "q", "z"]


# --------------------------------------------------------------------------- what the runtime is given


def test_plan_holds_every_runtime_decision(resolve):
    body = (
        '[master]\ngpu_count = 8\nlog_dir = "/var/log/x"\nruntime_dir = "/run/x"\nstart_seconds = 4\n'
        "start_retries = 2\n"
        + instances(
            'b: tp_size = 2; host = "0.0.0.0"; env = { PYTHONUNBUFFERED = "0", A = "1" }; api_key_env = "K"',
            'a: tp_size = 2; host = "::"; depends_on = ["b"]',
            'c: gpu_ids = [7]; host = "10.1.2.3"; enable = false',
        )
    )
    result = resolve(body)
    units = ok(result)
    plan = result.plan
    assert [u.name for u in plan.start_order] == ["b", "a"]
    assert (units["b"].priority, units["a"].priority) == (110, 120)
    assert (units["b"].probe_host, units["a"].probe_host, units["c"].probe_host) == ("127.0.0.1", "::1", "10.1.2.3")
    # "auto": largest first, ties by name, lowest ids first
    assert units["a"].exports == (("CUDA_VISIBLE_DEVICES", "0,1"), ("PYTHONUNBUFFERED", "1"))
    assert units["b"].exports == (("CUDA_VISIBLE_DEVICES", "2,3"), ("A", "1"), ("PYTHONUNBUFFERED", "0"))
    assert (units["a"].highest_gpu, units["b"].highest_gpu) == (1, 3)
    assert units["b"].program == "sglang-b"
    assert units["b"].log_file == "/var/log/x/sglangc/sglang-server-b.log" and plan.log_dir == "/var/log/x/sglangc"
    assert units["b"].pid_file == "/run/x/pids/b.pid"
    assert units["b"].secret_file == "/run/x/secrets/b.yaml" and units["a"].secret_file is None
    assert units["b"].argv[units["b"].argv.index("--config") + 1] == units["b"].secret_file
    assert plan.settle_seconds == (4 + 2 + 2) * (2 + 1) + 5
    assert (units["b"].weight_split, units["b"].memory_fraction, units["b"].memory_percent) == (2, 0.9, 90)
    assert units["b"].autostart and units["b"].boot and not units["c"].boot
    moved = plan.relocated("/scratch")
    assert moved.deployment.master.runtime_dir == "/scratch/run/x"
    assert {u.name: u.log_file for u in moved.units}["b"] == "/scratch/var/log/x/sglangc/sglang-server-b.log"
    assert {u.name: u.secret_file for u in moved.units}["b"] == "/scratch/run/x/secrets/b.yaml"
    doc = json.loads(plan_json(plan))
    assert doc["start_order"] == ["b", "a"] and doc["settle_seconds"] == plan.settle_seconds
    by_name = {i["name"]: i for i in doc["instances"]}
    assert by_name["b"]["exports"]["CUDA_VISIBLE_DEVICES"] == "2,3" and by_name["b"]["priority"] == 110
