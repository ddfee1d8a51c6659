#!/usr/bin/env python3
"""The gateway's cost: latency of small chat requests through SGLang's model gateway (the real smg) vs straight
to the SGLang stand-in behind it, in the same run.

    python bench/bench_gateway.py [--requests 1000] [--clients 8]

One compiled deployment (one stand-in instance behind the gateway, plain background processes) is started; then
rounds alternate between the two paths, each round `requests` chat completions spread over `clients` threads
(one kept-alive connection per client, as OpenAI clients do). Median and p99 latency and requests per second
of each path, and the difference of the medians.                                         target: ≤ 2 ms added
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_runtime import Row, Runner, compile_config

from support import SYSTEM_PATH
from support.net import free_ports
from support.standin import make_project

KEY = "bench-gateway-key"
INSTANCES = """
[gateway]
enable = true
host = "127.0.0.1"
port = <<gateway>>
api_key_env = "BENCH_GATEWAY_KEY"
server_args = { prometheus-port = <<metrics>> }

[instances.x]
model_path = "<<model>>"
served_model_name = "model-x"
port = <<port>>
gpu_ids = [0]
"""
BODY = json.dumps({"model": "model-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}).encode()


def one(conn: http.client.HTTPConnection) -> float:
    """Seconds for one chat completion on a kept-alive connection (send, read the whole answer)."""
    started = time.perf_counter()
    conn.request(
        "POST", "/v1/chat/completions", BODY, {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    )
    reply = conn.getresponse()
    reply.read()
    if reply.status != 200:
        raise RuntimeError(f"port {conn.port}: HTTP {reply.status}")
    return time.perf_counter() - started


def round_of(port: int, requests: int, clients: int) -> tuple[list[float], float]:
    """Latencies of `requests` requests from `clients` threads, and the wall time of the round."""
    latencies: list[float] = []
    lock = threading.Lock()
    left = [requests]

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                seconds = one(conn)
                with lock:
                    latencies.append(seconds)
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def bench(requests: int, clients: int, rounds: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="sglangc-bench-gateway-") as tmp:
        work = Path(tmp)
        project = make_project(work / "project", supervisor=False, gateway=True)
        gateway, metrics, port = free_ports(3)
        instances = INSTANCES.replace("<<gateway>>", str(gateway)).replace("<<metrics>>", str(metrics))
        out = compile_config(work, project, instances.replace("<<port>>", str(port)))
        env = {"PATH": SYSTEM_PATH, "HOME": str(work), "LANG": "C.UTF-8", "BENCH_GATEWAY_KEY": KEY}
        runner = Runner(out, env)
        try:
            for args in (("start",), ("wait", "--timeout", "120")):
                done = runner(*args, timeout=180)
                if done.returncode:
                    raise RuntimeError(f"{args}: {done.stdout}{done.stderr}")
            for target in (port, gateway):  # warm both paths up (connections, smg's first routing decisions)
                round_of(target, 2 * clients, clients)
            times: dict[int, list[float]] = {port: [], gateway: []}
            walls: dict[int, float] = {port: 0.0, gateway: 0.0}
            for _ in range(rounds):
                for target in (port, gateway):
                    latencies, wall = round_of(target, requests // rounds, clients)
                    times[target] += latencies
                    walls[target] += wall
        finally:
            runner.cleanup(work)
    direct, through = (statistics.median(times[p]) * 1000 for p in (port, gateway))
    direct99, through99 = (p99(times[p]) * 1000 for p in (port, gateway))
    rps_direct, rps_through = (len(times[p]) / walls[p] for p in (port, gateway))
    what = f"{len(times[gateway])} requests, {clients} clients"
    return [
        (
            f"gateway: latency added at the median ({what})",
            "≤ 2 ms",
            f"{through - direct:.2f} ms ({through:.2f} via smg, {direct:.2f} direct)",
            f"{through / direct:.2f}× direct",
        ),
        (
            "gateway: p99 latency",
            "-",
            f"{through99:.2f} ms via smg, {direct99:.2f} ms direct",
            f"{through99 / direct99:.2f}× direct",
        ),
        (
            "gateway: requests per second",
            "-",
            f"{rps_through:.0f} via smg, {rps_direct:.0f} direct",
            f"{rps_through / rps_direct:.2f}× direct",
        ),
    ]


def run(quick: bool = False, requests: int = 1000, clients: int = 8) -> list[Row]:
    """The rows of the table; `quick`: 40 requests (the benchmark works; its figures mean little)."""
    return bench(40 if quick else requests, clients, 1 if quick else 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="requests per path (at least 500)")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    for row in run(requests=args.requests, clients=args.clients):
        print(" | ".join(row))


if __name__ == "__main__":
    main()
