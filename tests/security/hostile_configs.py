"""Configs under the 1 MiB limit shaped to make a checker slow or hungry: each with the words of the finding
`sglangc check` must end with. Used by the tests (it ends, with that finding) and by bench/ (how fast)."""

from __future__ import annotations

HEAD = 'version = 1\nsglang_version = "0.5.23"\n[master]\npixi_environment = "latest"\ngpu_count = 1024\n'


def _instances(count: int, body: str) -> str:
    return HEAD + "".join(
        f'[instances.i{i:05d}]\nmodel_path = "/m/{i}"\n' + body.replace("{i}", str(i)) for i in range(count)
    )


SHAPES: dict[str, tuple[str, str]] = {
    # the TOML parser's cost grows with the square of a dotted key's length
    "dotted key of 50,000 parts": ("a" + ".a" * 50_000 + " = 1\n", "nested too deeply"),
    "table header of 50,000 parts": ("[" + "a." * 50_000 + "a]\n", "nested too deeply"),
    "dotted key in an inline table": ("x = { " + "a." * 50_000 + "a = 1 }\n", "nested too deeply"),
    "arrays nested 100,000 deep": ("x = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    # every unknown key or flag costs a did-you-mean search: the check stops after 100 findings
    "30,000 unknown flags": (
        HEAD
        + '[instances.a]\nmodel_path = "/m"\ngpu_ids = [0]\n[instances.a.server_args]\n'
        + "".join(f"zzflag-{i} = 1\n" for i in range(30_000)),
        "at most 1024",
    ),
    "1,000 unknown flags": (
        HEAD
        + '[instances.a]\nmodel_path = "/m"\ngpu_ids = [0]\n[instances.a.server_args]\n'
        + "".join(f"zzflag-{i} = 1\n" for i in range(1_000)),
        "too many findings",
    ),
    "20,000 unknown instance keys": (
        HEAD + '[instances.a]\nmodel_path = "/m"\ngpu_ids = [0]\n' + "".join(f"k{i} = 1\n" for i in range(20_000)),
        "too many findings",
    ),
    "20,000 unknown tables": (
        HEAD + '[instances.a]\nmodel_path = "/m"\ngpu_ids = [0]\n' + "".join(f"[x{i}]\n" for i in range(20_000)),
        "too many findings",
    ),
    "1,024 instances with 20 unknown flags each": (
        _instances(1024, "gpu_ids = [{i}]\nserver_args = { " + ", ".join(f"zz{j} = 1" for j in range(20)) + " }\n"),
        "too many findings",
    ),
    # pairs of instances: quadratic when compared pair by pair
    "1,024 instances on one GPU and one port": (
        _instances(1024, 'gpu_ids = [0]\nport = 30000\nhost = "0.0.0.0"\nmem_fraction_static = 0.5\n'),
        "too many findings",
    ),
    "1,024 instances that depend on themselves": (
        HEAD
        + "".join(
            f'[instances.i{i:05d}]\nmodel_path = "/m"\ngpu_ids = [{i}]\ndepends_on = ["i{i:05d}"]\n'
            for i in range(1024)
        ),
        "depends on itself",
    ),
    "a cycle through 1,024 instances": (
        HEAD
        + "".join(
            f'[instances.i{i:05d}]\nmodel_path = "/m"\ngpu_ids = [{i}]\ndepends_on = ["i{(i + 1) % 1024:05d}", '
            f'"i{(i + 7) % 1024:05d}"]\n'
            for i in range(1024)
        ),
        "dependency cycle",
    ),
    "more instances than allowed": (_instances(1100, "enable = false\n"), "at most 1024"),
    # values that pass the schema but cannot run
    "an argument of 140,000 bytes": (
        HEAD + '[instances.a]\nmodel_path = "/m"\ngpu_ids = [0]\nserved_model_name = "' + "x" * 140_000 + '"\n',
        "E2BIG",
    ),
    "an env value of 140,000 bytes": (
        HEAD + '[instances.a]\nmodel_path = "/m"\ngpu_ids = [0]\nenv = { BIG = "' + "y" * 140_000 + '" }\n',
        "E2BIG",
    ),
    "a runtime_dir supervisord cannot take": (
        HEAD.replace("[master]\n", '[master]\nruntime_dir = "/run/a ;b"\n')
        + '[instances.a]\nmodel_path = "/m"\ngpu_ids = [0]\n',
        "comment",
    ),
    "a runtime_dir of 58 characters and 148 bytes": (
        HEAD.replace("[master]\n", '[master]\nruntime_dir = "/run/' + "é" * 53 + '"\n')
        + '[instances.a]\nmodel_path = "/m"\ngpu_ids = [0]\n',
        "under 100 bytes",
    ),
}
