"""What a person needs on the second day: instances started by name only (autostart = false), and log tails of
the current run only."""

from __future__ import annotations

import pytest

from .conftest import MODES

TWO = """
[instances.a]
model_path = "<<model>>"
port = <<port_a>>
gpu_ids = [0]
env = { SGLANG_STANDIN_RECORD = "<<record_a>>" }

[instances.b]
model_path = "<<model>>"
port = <<port_b>>
gpu_ids = [1]
autostart = false
env = { SGLANG_STANDIN_RECORD = "<<record_b>>" }
"""


@pytest.mark.parametrize("mode", MODES)
def test_an_instance_without_autostart_starts_only_by_name(deploy, mode):
    dep = deploy(TWO, ["a", "b"], mode=mode)
    dep.run_ok("start")
    dep.run_ok("wait", "--timeout", "30")  # waits for the autostart instances only
    assert dep.record_path("a").exists() and not dep.record_path("b").exists()
    status = dep.runner("status")
    states = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()}
    assert states["a"] == "RUNNING" and states["b"] in ("STOPPED", "EXITED"), status.stdout
    dep.run_ok("start", "b")
    dep.run_ok("wait", "--timeout", "30", "b")
    assert dep.record_path("b").exists()
    dep.run_ok("stop")
    if mode == "supervisord":
        conf = (dep.out / "supervisord.conf").read_text()
        assert "[program:sglang-b]\ncommand=" in conf
        section = conf.split("[program:sglang-b]")[1].split("\n\n")[0]
        assert "autostart=false" in section


CRASHING = """
[instances.x]
model_path = "<<model>>"
port = <<port_x>>
gpu_ids = [0]
env = { SGLANG_STANDIN_RECORD = "<<record_x>>", SGLANG_STANDIN_CRASH_AT_START = "1" }
"""


def test_tails_show_the_current_run_only(deploy):
    dep = deploy(CRASHING, ["x"], mode="fallback")
    for _ in range(3):
        dep.runner("start")
    log = dep.log("x")
    assert log.count("launch-x: === run begins ") == 3 and log.count("Crash on demand at start") == 3
    waited = dep.runner("wait", "--timeout", "10")
    assert waited.returncode == 1
    assert waited.stdout.count("Crash on demand at start") == 1, waited.stdout
    assert "(this run)" in waited.stdout
