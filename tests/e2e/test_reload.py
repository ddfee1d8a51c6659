"""`reload` applies a recompiled DIR to a running deployment: what is new starts, what is gone stops, what
changed restarts, and every other server keeps running, untouched (same pid)."""

from __future__ import annotations

import subprocess

import pytest

from support.procs import proc_state

from .conftest import MODES

INSTANCE = """
[instances.{name}]
model_path = "<<model>>"
port = <<port_{name}>>
gpu_ids = [{gpu}]
env = {{ SGLANG_STANDIN_RECORD = "<<record_{name}>>"{extra} }}
"""


def instances(*specs: tuple[str, int, str]) -> str:
    return "".join(INSTANCE.format(name=n, gpu=g, extra=extra) for n, g, extra in specs)


BEFORE = instances(("keep", 0, ""), ("change", 1, ""), ("drop", 2, ""))
AFTER = instances(("keep", 0, ""), ("change", 1, ', CHANGED = "yes"'), ("add", 3, ""))


@pytest.mark.parametrize("mode", MODES)
def test_reload_starts_new_stops_removed_restarts_changed_and_leaves_the_rest(deploy, mode):
    dep = deploy(BEFORE, ["keep", "change", "drop", "add"], mode=mode)
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")
    pids = {n: dep.record(n)["pid"] for n in ("keep", "change", "drop")}

    said = dep.recompile(AFTER)
    assert "reload would start add (new), restart change (changed), stop drop (removed)" in said, said
    assert "leave keep untouched" in said, said
    dep.record_path("change").unlink()

    done = dep.run_ok("reload")
    assert "keep: unchanged" in done.stdout and "change: changed: restarting" in done.stdout, done.stdout
    assert "drop: removed from the compile: stopping" in done.stdout and "add: new: starting" in done.stdout
    dep.run_ok("wait", "--timeout", "30")
    assert dep.record("keep")["pid"] == pids["keep"] and proc_state(pids["keep"]), "keep was touched"
    assert dep.record("change")["pid"] != pids["change"] and proc_state(pids["change"]) is None
    assert dep.record("change")["env"].get("CHANGED") == "yes", "the changed instance runs its new launch script"
    assert proc_state(pids["drop"]) is None, "the removed instance still runs"
    assert proc_state(dep.record("add")["pid"]), "the added instance does not run"

    status = dep.runner("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert sorted(line.split()[0] for line in status.stdout.splitlines()) == ["add", "change", "keep"]

    if mode == "supervisord":
        assert reread(dep) == "No config updates to processes", "supervisord runs the conf as compiled"
    again = dep.run_ok("reload")  # nothing changed since: nothing happens
    assert again.stdout.count("unchanged, left as it is") == 3, again.stdout
    assert dep.record("keep")["pid"] == pids["keep"]
    dep.run_ok("stop")
    assert not dep.leftovers()


def test_reload_of_a_deployment_that_was_not_started_says_so(deploy):
    dep = deploy(BEFORE, ["keep", "change", "drop", "add"], mode="fallback")
    done = dep.run_ok("reload")
    assert "nothing runs from" in done.stdout and "start" in done.stdout


def test_a_program_section_supervisord_has_not_taken_yet_is_replaced_by_reload(deploy):
    """`restart b` after a recompile runs b's new launch script under its old program section; reload sees
    that supervisord's settings for b differ from the conf, and replaces them (restarting b, not a)."""
    two = instances(("a", 0, ""), ("b", 1, ""))
    dep = deploy(two, ["a", "b"], mode="supervisord")
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")
    a = dep.record("a")["pid"]
    dep.recompile(two.replace("gpu_ids = [1]\n", "gpu_ids = [1]\nautostart = false\n"))
    dep.run_ok("restart", "b")
    dep.run_ok("wait", "--timeout", "30", "b")
    b = dep.record("b")["pid"]
    done = dep.run_ok("reload")
    assert "b: its supervisord settings changed: restarting" in done.stdout, done.stdout
    dep.run_ok("wait", "--timeout", "30", "b")
    assert dep.record("b")["pid"] != b and dep.record("a")["pid"] == a
    assert reread(dep) == "No config updates to processes"


def reread(dep) -> str:
    """What `supervisorctl reread` finds different between the conf and what supervisord runs."""
    state = dict(line.split("=", 1) for line in (dep.run_dir / "state").read_text().splitlines())
    done = subprocess.run(
        [state["supervisorctl"], "-c", str(dep.out / "supervisord.conf"), "reread"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() + done.stderr.strip()


def test_reload_takes_no_names(deploy):
    dep = deploy(BEFORE, ["keep", "change", "drop", "add"], mode="fallback")
    done = dep.runner("reload", "keep")
    assert done.returncode == 2 and "reload takes no arguments" in done.stderr, done.stderr


@pytest.mark.parametrize("mode", MODES)
def test_a_removed_instance_leaves_no_secret_behind(deploy, mode):
    with_key = BEFORE.replace("[instances.drop]\n", '[instances.drop]\napi_key_env = "RELOAD_TEST_KEY"\n')
    dep = deploy(with_key, ["keep", "change", "drop", "add"], mode=mode, env={"RELOAD_TEST_KEY": "sk-reload-1"})
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")
    secret = dep.run_dir / "secrets" / "drop.yaml"
    assert secret.exists()
    dep.recompile(AFTER)
    dep.run_ok("reload")
    assert not secret.exists(), "the removed instance's key file is still there"
    dep.run_ok("stop")
