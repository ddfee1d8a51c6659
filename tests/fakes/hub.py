"""A stand-in for the Hugging Face Hub: serves tiny repositories the way the Hub answers the calls that
`huggingface_hub` (its `hf download` and `HfApi.model_info`) makes, so the real client runs against it through
`HF_ENDPOINT`. Stdlib only.

    python tests/fakes/hub.py --port PORT --repos DIR [--token TOKEN] [--rate BYTES_PER_S] [--log FILE]

DIR holds one directory per repository, `DIR/<org>/<name>/`, its files the repository's files at its one
commit. The commit id is the SHA-1 of the file list (path, size, sha256), so it changes when a file does.
Revisions answered: `main` and the commit id; any other is `RevisionNotFound`, an unknown repository
`RepoNotFound` (both 404 with the Hub's `X-Error-Code` header). With --token every repository is private: no
token is a 401 like the Hub's for a private repo, another token the Hub's 401 "Invalid credentials".

Calls (as the Hub has them):
    GET  /api/models/<repo>/revision/<rev>[?blobs=true]   model info: sha, siblings (size, blobId, lfs.sha256)
    HEAD /<repo>/resolve/<rev>/<path>                     X-Repo-Commit, ETag (LFS: sha256; else the git blob
                                                          id), X-Linked-Size/-Etag for LFS, Content-Length
    GET  /<repo>/resolve/<rev>/<path>                     the bytes; `Range: bytes=N-` resumes (206). An LFS
                                                          file is a 302 to another origin (localhost), as the
                                                          Hub sends its CDN: /cdn/<repo>/<sha256>/<path>, which
                                                          needs no token (the client drops it on the way)
Files whose name ends in .safetensors or .bin are LFS files, as on the Hub.
ModelScope's calls (MODELSCOPE_ENDPOINT): GET /api/v1/models/<repo>/repo/files?Revision=R (the listing, with
SHA-256) and GET /api/v1/models/<repo>/repo?Revision=R&FilePath=P (a file); its main branch is `master`.

--rate throttles each file transfer (so a test can kill a download mid-file); the file DIR/.rate, when present,
overrides it while the server runs: `RATE [AFTER]`, bytes per second (0: unthrottled) past the first AFTER bytes
of each transfer (default 0). --log appends one line per request:
`METHOD PATH RANGE` (RANGE is `-` without one).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import re
import time
import urllib.parse
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".bin")
API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>[^/?]+)$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
CDN = re.compile(r"^/cdn/(?P<repo>[^/]+/[^/]+)/(?P<sha256>[0-9a-f]{64})/(?P<path>.+)$")
MS_REPO = re.compile(r"^/api/v1/models/(?P<repo>[^/]+/[^/]+)/repo(?P<files>/files)?$")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root

    def files(self) -> list[dict[str, object]]:
        out = []
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            entry: dict[str, object] = {
                "rfilename": path.relative_to(self.root).as_posix(),
                "size": len(data),
                "blobId": git_blob_id(data),
            }
            if path.name.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            out.append(entry)
        return out

    def commit(self) -> str:
        listing = json.dumps([(f["rfilename"], f["size"], f["blobId"]) for f in self.files()])
        return hashlib.sha1(listing.encode()).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "hub-standin/1"
    protocol_version = "HTTP/1.1"
    options: argparse.Namespace

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _log(self) -> None:
        if self.options.log:
            with open(self.options.log, "a") as f:
                f.write(f"{self.command} {urllib.parse.urlsplit(self.path).path} {self.headers.get('Range', '-')}\n")

    def _error(self, status: int, code: str | None = None, message: str | None = None) -> None:
        body = json.dumps({"error": message or code or "error"}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        if message:
            self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorized(self) -> bool:
        if not self.options.token:
            return True
        given = self.headers.get("Authorization", "")
        if given == f"Bearer {self.options.token}":
            return True
        if given:
            self._error(401, message="Invalid credentials in Authorization header")
        else:
            self._error(401, "RepoNotFound", "Repository not found")
        return False

    def _repo(self, name: str, rev: str) -> Repo | None:
        root = Path(self.options.repos, name)
        if ".." in name.split("/") or not root.is_dir():
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        repo = Repo(root)
        if rev not in ("main", repo.commit()):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            return None
        return repo

    def do_HEAD(self) -> None:
        self._resolve(body=False)

    def do_GET(self) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if m := MS_REPO.match(path):
            self._modelscope(m["repo"], bool(m["files"]))
            return
        if m := CDN.match(path):
            self._cdn(m["repo"], m["sha256"], m["path"])
            return
        if m := API.match(path):
            self._log()
            if not self._authorized() or not (repo := self._repo(m["repo"], m["rev"])):
                return
            doc = {"id": m["repo"], "modelId": m["repo"], "sha": repo.commit(), "private": bool(self.options.token)}
            doc["siblings"] = repo.files()
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._resolve(body=True)

    def _resolve(self, body: bool) -> None:
        self._log()
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        m = RESOLVE.match(path)
        if not m:
            self._error(404, message="not a Hub route of this stand-in")
            return
        if not self._authorized() or not (repo := self._repo(m["repo"], m["rev"])):
            return
        entry = next((f for f in repo.files() if f["rfilename"] == m["path"]), None)
        if entry is None:
            self._error(404, "EntryNotFound", "Entry not found")
            return
        data = (repo.root / m["path"]).read_bytes()
        lfs = t_dict(entry.get("lfs"))
        etag = f'"{lfs["sha256"] if lfs else entry["blobId"]}"'
        if lfs and body:
            self.send_response(302)
            self.send_header(
                "Location", f"http://localhost:{self.options.port}/cdn/{m['repo']}/{lfs['sha256']}/{m['path']}"
            )
            self.send_header("X-Repo-Commit", repo.commit())
            self.send_header("X-Linked-Etag", etag)
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        if body and (r := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))):
            start = min(int(r[1]), len(data))
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", repo.commit())
        self.send_header("ETag", etag)
        if lfs:
            self.send_header("X-Linked-Etag", etag)
            self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if body:
            self._send(data[start:])

    def _send(self, data: bytes) -> None:
        chunk = 4096
        for offset in range(0, len(data), chunk):
            rate, after = self._rate()
            try:
                self.wfile.write(data[offset : offset + chunk])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return
            if rate and offset >= after:
                time.sleep(chunk / rate)

    def _rate(self) -> tuple[float, int]:
        try:
            words = Path(self.options.repos, ".rate").read_text().split()
            return float(words[0]), int(words[1]) if len(words) > 1 else 0
        except (OSError, ValueError, IndexError):
            return self.options.rate, 0

    def _cdn(self, name: str, sha256: str, path: str) -> None:
        self._log()
        file = Path(self.options.repos, name, path)
        if ".." in Path(name, path).parts or not file.is_file():
            self._error(404, message="no such object")
            return
        data = file.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            self._error(404, message="no such object")
            return
        self._bytes(data)

    def _bytes(self, data: bytes) -> None:
        """`data`, or what follows the offset a `Range: bytes=N-` asks for (206)."""
        start = 0
        if r := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "")):
            start = min(int(r[1]), len(data))
        self.send_response(206 if start else 200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self._send(data[start:])

    def _modelscope(self, name: str, listing: bool) -> None:
        """ModelScope's two calls: the file list of a revision, and one file (`master` is its main branch)."""
        self._log()
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        rev = query.get("Revision") or "master"
        if not self._authorized() or not (repo := self._repo(name, "main" if rev == "master" else rev)):
            return
        files = repo.files()
        if listing:
            entries = [
                {
                    "Name": str(f["rfilename"]).rsplit("/", 1)[-1],
                    "Path": f["rfilename"],
                    "Size": f["size"],
                    "Sha256": hashlib.sha256((repo.root / str(f["rfilename"])).read_bytes()).hexdigest(),
                    "Type": "blob",
                    "Revision": repo.commit(),
                }
                for f in files
            ]
            body = json.dumps({"Code": 200, "Success": True, "Data": {"Files": entries}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        target = query.get("FilePath", "")
        if not any(f["rfilename"] == target for f in files):
            self._error(404, "EntryNotFound", "file not found")
            return
        self._bytes((repo.root / target).read_bytes())


def t_dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--repos", required=True)
    parser.add_argument("--token", default=os.environ.get("HUB_STANDIN_TOKEN", ""))
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--log", default="")
    options = parser.parse_args()
    Handler.options = options
    server = http.server.ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
