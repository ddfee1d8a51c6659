"""Put artifacts into the output directory: each file renamed into place, manifest last, stale files pruned.

The directory may be a bind mount, so it is never replaced as a whole, and files sglangc did not write
(not listed in the previous manifest) are never touched.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing as t
from pathlib import Path

from sglangc.errors import SglangcError

if t.TYPE_CHECKING:
    from sglangc.render import Artifact

MANIFEST = "manifest.json"


class WriteError(SglangcError):
    """The output directory cannot be read or written."""


@dataclasses.dataclass(frozen=True)
class Changes:
    written: tuple[str, ...]  # new or changed files
    removed: tuple[str, ...]  # files of the previous manifest that are gone now
    unchanged: tuple[str, ...]

    @property
    def any(self) -> bool:
        return bool(self.written or self.removed)


def plan_changes(artifacts: t.Sequence[Artifact], out_dir: Path) -> Changes:
    """What writing `artifacts` into `out_dir` would change (reads only)."""
    written, unchanged = [], []
    for a in artifacts:
        (unchanged if _same(out_dir / a.relpath, a) else written).append(a.relpath)
    new = {a.relpath for a in artifacts}
    removed = sorted(p for p in _previous_files(out_dir) if p not in new and (out_dir / p).exists())
    return Changes(tuple(written), tuple(removed), tuple(unchanged))


def write(artifacts: t.Sequence[Artifact], out_dir: Path) -> Changes:
    """Write every changed artifact atomically (manifest.json last), then remove stale files."""
    changes = plan_changes(artifacts, out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        ordered = sorted(artifacts, key=lambda a: a.relpath == MANIFEST)
        for a in ordered:
            if a.relpath in changes.written:
                _replace(out_dir / a.relpath, a)
        for relpath in changes.removed:
            (out_dir / relpath).unlink(missing_ok=True)
    except OSError as e:
        raise WriteError(f"{out_dir}: cannot write: {e.strerror or e}") from e
    return changes


def _replace(target: Path, a: Artifact) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.sglangc-tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(a.text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, a.mode)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _same(path: Path, a: Artifact) -> bool:
    try:
        return path.read_bytes() == a.text.encode("utf-8") and (path.stat().st_mode & 0o777) == a.mode
    except OSError:
        return False


def _previous_files(out_dir: Path) -> list[str]:
    """Files the previous manifest lists; only plain relative paths inside the directory are trusted."""
    try:
        doc = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        paths = [entry["path"] for entry in doc["artifacts"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [p for p in paths if isinstance(p, str) and p and not p.startswith("/") and ".." not in p.split("/")]
