"""Put artifacts into the output directory: each file renamed into place, manifest last, stale files pruned.

The directory may be a bind mount, so it is never replaced as a whole, and nothing sglangc did not write is
touched: a file is pruned only when the previous manifest lists it and its bytes still match the checksum
recorded there. Every path below DIR is reached through directory file descriptors opened with O_NOFOLLOW, so
a symbolic link inside DIR (`DIR/lib -> /elsewhere`) is never written or deleted through, and a FIFO or a
device at an artifact's path is replaced without being opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import stat
import typing as t
from pathlib import Path

from sglangc.errors import SglangcError, show

if t.TYPE_CHECKING:
    from sglangc.render import Artifact

MANIFEST = "manifest.json"
MANIFEST_MAX_BYTES = 1024 * 1024
MANIFEST_MAX_DEPTH = 8
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class WriteError(SglangcError):
    """The output directory cannot be read or written, or holds what sglangc refuses to write through."""

    exit_code = 4


@dataclasses.dataclass(frozen=True)
class Changes:
    written: tuple[str, ...]  # new or changed files
    removed: tuple[str, ...]  # files of the previous manifest that are gone now
    unchanged: tuple[str, ...]
    kept: tuple[str, ...] = ()  # files of the previous manifest left alone: changed since sglangc wrote them
    # instance → revision, as the previous manifest recorded them (None: no previous manifest that has them)
    previous_revisions: dict[str, str] | None = None

    @property
    def any(self) -> bool:
        return bool(self.written or self.removed)


def safe_relpath(path: object) -> bool:
    """A plain relative path inside DIR: no empty, `.` or `..` part, not absolute, no control character."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/")) and not any(
        ord(c) < 0x20 or ord(c) == 0x7F for c in path
    )


def plan_changes(artifacts: t.Sequence[Artifact], out_dir: Path) -> Changes:
    """What writing `artifacts` into `out_dir` would change (reads only)."""
    with _Dir.open(out_dir, create=False) as root:
        written: list[str] = []
        unchanged: list[str] = []
        for a in artifacts:
            (unchanged if root is not None and root.holds(a) else written).append(a.relpath)
        removed: list[str] = []
        kept: list[str] = []
        if root is not None:
            new = {a.relpath for a in artifacts}
            for relpath, sha256 in sorted(root.previous_manifest().items()):
                if relpath in new:
                    continue
                verdict = root.regular_sha256(relpath)
                if verdict == sha256:
                    removed.append(relpath)
                elif verdict is not None:
                    kept.append(relpath)
        revisions = root.previous_revisions() if root is not None else None
    return Changes(tuple(written), tuple(removed), tuple(unchanged), tuple(kept), revisions)


def write(artifacts: t.Sequence[Artifact], out_dir: Path) -> Changes:
    """Write every changed artifact atomically (manifest.json last), then remove stale files."""
    changes = plan_changes(artifacts, out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(f"{show(str(out_dir), limit=200)}: cannot create: {e.strerror or e}") from e
    with _Dir.open(out_dir, create=True) as root:
        assert root is not None
        for a in sorted(artifacts, key=lambda a: a.relpath == MANIFEST):
            if a.relpath in changes.written:
                root.replace(a)
        for relpath in changes.removed:
            root.remove(relpath)
    return changes


class _Dir:
    """The output directory, held open; every path below it is walked with O_NOFOLLOW."""

    def __init__(self, path: Path, fd: int, create: bool) -> None:
        self.path, self.fd, self.create = path, fd, create

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path, *, create: bool) -> t.Iterator[_Dir | None]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if create:
                raise WriteError(f"{show(str(path), limit=200)}: cannot open") from None
            yield None
            return
        except OSError as e:
            raise WriteError(f"{show(str(path), limit=200)}: cannot open: {e.strerror or e}") from e
        try:
            yield cls(path, fd, create)
        finally:
            os.close(fd)

    def fail(self, relpath: str, what: str, error: OSError | None = None) -> t.NoReturn:
        reason = f": {error.strerror or error}" if error else ""
        raise WriteError(f"{show(str(self.path / relpath), limit=200)}: {what}{reason}")

    @contextlib.contextmanager
    def parent(self, relpath: str, *, create: bool) -> t.Iterator[int | None]:
        """An fd of the directory holding `relpath`. Reading (`create` false): None when a directory on the way is
        missing, a symbolic link or not a directory. Writing: missing directories are made, the others refused."""
        parts = relpath.split("/")[:-1]
        fds: list[int] = []
        try:
            current = self.fd
            for i, part in enumerate(parts):
                sub = "/".join(parts[: i + 1])
                try:
                    st = os.stat(part, dir_fd=current, follow_symlinks=False)
                except FileNotFoundError:
                    if not create:
                        yield None
                        return
                    try:
                        os.mkdir(part, 0o755, dir_fd=current)
                    except OSError as e:
                        self.fail(sub, "cannot create the directory", e)
                    st = os.stat(part, dir_fd=current, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode) and not create:
                    yield None  # nothing of sglangc's is there: it is not read, not pruned
                    return
                if stat.S_ISLNK(st.st_mode):
                    self.fail(
                        sub, "is a symbolic link: sglangc writes nothing through it (remove it, then compile again)"
                    )
                if not stat.S_ISDIR(st.st_mode):
                    self.fail(sub, "is not a directory (remove it, then compile again)")
                try:
                    current = os.open(part, _DIR_FLAGS, dir_fd=current)
                except OSError as e:
                    self.fail(sub, "cannot open the directory", e)
                fds.append(current)
            yield current
        finally:
            for fd in fds:
                os.close(fd)

    def holds(self, a: Artifact) -> bool:
        """Whether the artifact is already there: a regular file with the same bytes and mode."""
        data = a.text.encode("utf-8")
        with self.parent(a.relpath, create=False) as fd:
            if fd is None:
                return False
            content = _read_regular(a.relpath.rsplit("/", 1)[-1], fd, len(data))
            if content is None or content[0] != data:
                return False
            return stat.S_IMODE(content[1].st_mode) == a.mode

    def regular_sha256(self, relpath: str) -> str | None:
        """The sha256 of a regular file at `relpath` (never through a symlink), None when there is none."""
        with self.parent(relpath, create=False) as fd:
            if fd is None:
                return None
            content = _read_regular(relpath.rsplit("/", 1)[-1], fd, MANIFEST_MAX_BYTES * 64)
            return hashlib.sha256(content[0]).hexdigest() if content is not None else None

    def _previous_doc(self) -> t.Any:
        """The previous manifest, parsed; None when it is missing or not trusted."""
        content = _read_regular(MANIFEST, self.fd, MANIFEST_MAX_BYTES)
        if content is None or _json_depth(content[0]) > MANIFEST_MAX_DEPTH:
            return None
        try:
            return json.loads(content[0])
        except (ValueError, RecursionError):
            return None

    def previous_revisions(self) -> dict[str, str] | None:
        """instance → revision of each enabled instance the previous manifest lists (None: it records none)."""
        from sglangc.resolve import GATEWAY_NAME

        doc = self._previous_doc()
        entries = doc.get("instances") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            return None
        gateway = doc.get("gateway")
        if isinstance(gateway, dict):
            entries = [*entries, {**gateway, "name": GATEWAY_NAME}]
        found = {
            e["name"]: e["revision"]
            for e in entries
            if isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("revision"), str)
        }
        return found or None

    def previous_manifest(self) -> dict[str, str]:
        """relpath → sha256 of each file the previous manifest lists; empty when it is missing or not trusted."""
        doc = self._previous_doc()
        try:
            entries = doc["artifacts"]
            records = {e["path"]: e["sha256"] for e in entries if isinstance(e, dict)}
        except (ValueError, KeyError, TypeError, RecursionError):
            return {}
        return {
            p: h
            for p, h in records.items()
            if safe_relpath(p) and p != MANIFEST and isinstance(h, str) and _SHA256.fullmatch(h)
        }

    def replace(self, a: Artifact) -> None:
        name = a.relpath.rsplit("/", 1)[-1]
        tmp = f".{name}.sglangc-tmp-{os.getpid()}"
        with self.parent(a.relpath, create=True) as fd:
            assert fd is not None
            try:
                out = os.open(
                    tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd
                )
            except FileExistsError:
                os.unlink(tmp, dir_fd=fd)
                out = os.open(
                    tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd
                )
            except OSError as e:
                self.fail(a.relpath, "cannot write", e)
            try:
                with os.fdopen(out, "wb") as f:
                    f.write(a.text.encode("utf-8"))
                    f.flush()
                    os.fchmod(f.fileno(), a.mode)
                    os.fsync(f.fileno())
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=fd)
                self.fail(a.relpath, "cannot write", e)

    def remove(self, relpath: str) -> None:
        with self.parent(relpath, create=False) as fd:
            if fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(relpath.rsplit("/", 1)[-1], dir_fd=fd)


def _read_regular(name: str, dir_fd: int, limit: int) -> tuple[bytes, os.stat_result] | None:
    """The bytes of a regular file of at most `limit` bytes (None for anything else: missing, a symlink, a FIFO,
    a device, too large). Opened with O_NOFOLLOW | O_NONBLOCK and checked with fstat, so nothing blocks."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        chunks, size = [], 0
        while size <= st.st_size:
            chunk = os.read(fd, max(st.st_size - size + 1, 1))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return (b"".join(chunks), st) if size <= limit else None
    finally:
        os.close(fd)


def _json_depth(data: bytes) -> int:
    """How deeply a JSON text nests, without parsing it (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest
