"""Check rendered artifacts with their real consumers. A finding here is a bug in sglangc, not in the config."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import typing as t
from pathlib import Path

from sglangc.errors import InternalError

if t.TYPE_CHECKING:
    from sglangc.render import Artifact


def lint(artifacts: t.Sequence[Artifact], supervisord_conf: str | None = None) -> None:
    """bash -n and shellcheck (when installed) on every script; supervisor's parser on the conf (when importable).

    `supervisord_conf` is the conf rendered with runtime paths inside a scratch directory, since supervisor's
    parser insists that log and pid directories exist.
    """
    problems: list[str] = []
    scripts = [a for a in artifacts if a.relpath.endswith(".sh")]
    for script in scripts:
        problems += _run(["bash", "-n"], script)
    shellcheck = shutil.which("shellcheck")
    if shellcheck:
        for script in scripts:
            problems += _run([shellcheck, "--shell=bash", "--severity=style", "--format=gcc", "-"], script)
    if supervisord_conf is not None:
        problems += _supervisor_problems(supervisord_conf)
    if problems:
        raise InternalError("generated artifacts failed lint (a bug in sglangc):\n" + "\n".join(problems))


def _run(command: list[str], artifact: Artifact) -> list[str]:
    done = subprocess.run(command, input=artifact.text, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return []
    out = (done.stdout + done.stderr).strip().replace("-:", f"{artifact.relpath}:")
    return [out or f"{artifact.relpath}: {command[0]} exited {done.returncode}"]


def _supervisor_problems(text: str) -> list[str]:
    try:
        from supervisor.options import ServerOptions
    except ImportError:
        return []
    with tempfile.TemporaryDirectory() as scratch:
        conf = Path(scratch, "supervisord.conf")
        conf.write_text(text, encoding="utf-8")
        options = ServerOptions()
        options.configfile = str(conf)
        try:
            options.process_config(do_usage=False)
        except ValueError as e:
            return [f"supervisord.conf: {e}"]
        return [f"supervisord.conf: {w}" for w in options.parse_warnings]
