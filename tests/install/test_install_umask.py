"""The installer sets its own umask: under an entrypoint's `umask 000` the environment it builds is still not
writable by other users (who could otherwise append code that root runs)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .installbox import Sandbox, copy_bundle


def test_environment_is_never_writable_by_others(box: Sandbox, wheelhouse: Path, tmp_path: Path) -> None:
    box.wrap = ["bash", "-c", 'umask 000 && exec "$@"', "umask-000"]
    done = box.run(copy_bundle(wheelhouse, tmp_path / "bundle.tar"))
    assert done.rc == 0, done.text
    env = box.prefix.resolve()
    writable = []
    for root, dirs, files in os.walk(env):
        for name in dirs + files:
            st = os.lstat(Path(root, name))
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
                writable.append(str(Path(root, name)))
    assert writable == [], writable[:10]
    init = next(env.glob("lib/python*/site-packages/sglang/__init__.py"))
    assert not os.stat(init).st_mode & stat.S_IWOTH
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o755
