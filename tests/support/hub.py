"""The stand-in Hugging Face Hub (tests/fakes/hub.py) in a process of its own, serving a tiny repository `org/tiny`
(config.json, two safetensors shards, their index, a README) with a request log.

    hub = Hub(tmp_path, token="", shard=300_000)   # listening when it returns; hub.stop() ends it
    hub.port, hub.repo (the files served), hub.requests(), hub.throttle(rate, after), hub.commit()
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from support import ROOT, load_module, wait_for

HUB = ROOT / "tests" / "fakes" / "hub.py"
SHARD = 300_000


def make_repo(root: Path, shard: int = SHARD) -> Path:
    repo = root / "org" / "tiny"
    repo.mkdir(parents=True)
    (repo / "config.json").write_text('{"architectures": ["Qwen2ForCausalLM"]}\n')
    (repo / "model-00001-of-00002.safetensors").write_bytes(os.urandom(shard))
    (repo / "model-00002-of-00002.safetensors").write_bytes(os.urandom(200_000))
    (repo / "README.md").write_text("a tiny repository\n")
    shards = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    index = {"metadata": {"total_size": shard + 200_000}, "weight_map": shards}
    (repo / "model.safetensors.index.json").write_text(json.dumps(index))
    return repo


class Hub:
    """The stand-in hub in a process of its own, with its request log."""

    def __init__(self, tmp: Path, token: str = "", shard: int = SHARD) -> None:
        self.repos = tmp / "repos"
        self.repo = make_repo(self.repos, shard)
        from support.net import free_port

        self.port = free_port()
        self.log = tmp / "hub.log"
        self.log.touch()
        argv = [sys.executable, str(HUB), "--port", str(self.port), "--repos", str(self.repos), "--log", str(self.log)]
        self.proc = subprocess.Popen(argv, env={**os.environ, "HUB_STANDIN_TOKEN": token})
        wait_for(lambda: _listening(self.port), 30, "the stand-in hub to listen")

    def requests(self) -> list[str]:
        noise = ("agent-harnesses", "internalAccelerationInfo")  # the clients' own side calls
        return [line for line in self.log.read_text().splitlines() if not any(n in line for n in noise)]

    def transfers(self) -> list[str]:
        """The paths of the file downloads asked of the hub (Hugging Face's resolve, ModelScope's repo?FilePath;
        not the CDN an LFS file is redirected to)."""
        return [r.split()[1] for r in self.requests() if "/resolve/" in r or r.split()[1].endswith("/repo")]

    def throttle(self, rate: int, after: int = 0) -> None:
        """Bytes per second past the first `after` bytes of each transfer (0: full speed)."""
        (self.repos / ".rate").write_text(f"{rate} {after}")

    def commit(self) -> str:
        return load_module("hub_standin", HUB).Repo(self.repo).commit()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
