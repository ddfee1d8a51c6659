"""``python -m sglang.launch_server ARGS``: the stand-in's process lifecycle.

Same order as SGLang: parse the arguments, spawn the children, "load the
model" with the port still closed, bind, warm up (/health and /ready 503),
log "The server is fired up and ready to roll!", serve.  SIGTERM while
loading kills at once (no handler yet; the children follow through
PDEATHSIG); afterwards it drains, stops serving, ends the children and exits 0.
SIGQUIT, which a crashing child sends, SIGKILLs the children and then the
server itself, like SGLang's kill_process_tree.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

from ._args import parse_args
from ._http import Server, Status
from ._log import log

children: list[subprocess.Popen] = []


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def crash_wanted() -> bool:
    gate = os.environ.get("SGLANG_STANDIN_CRASH_FILE")
    return not gate or os.path.exists(gate)


def spawn_children() -> None:
    for role in ("scheduler", "detokenizer"):
        argv = [sys.executable, "-m", "sglang._child", f"sglang-standin-{role}", str(os.getpid())]
        children.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL))


def end_children() -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()  # no handler in the children: they die at once
    for child in children:
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def kill_process_tree(signum, frame) -> None:
    log("Received sigquit from a child process. It usually means the child failed.", sys.stderr)
    for child in children:
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.kill(os.getpid(), signal.SIGKILL)


def write_record(path: str, args) -> None:
    record = {
        "argv": sys.argv[1:],
        "env": dict(os.environ),
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "children": [child.pid for child in children],
        "cwd": os.getcwd(),
        "args": vars(args),
    }
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(record, file, default=str)
    os.replace(temporary, path)


def serve(server: Server) -> None:
    status = server.status
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log(f"Uvicorn running on http://{status.args.host}:{status.args.port} (Press CTRL+C to quit)")
    ready_at = time.monotonic() + env_float("SGLANG_STANDIN_WARMUP_SECONDS", 0)
    crash_after = os.environ.get("SGLANG_STANDIN_CRASH_AFTER")
    crash_at = ready_at + float(crash_after) if crash_after else math.inf
    while not status.exiting:
        now = time.monotonic()
        if not status.up and now >= ready_at:
            status.up = True
            log("The server is fired up and ready to roll!")
        if now >= crash_at:
            crash_at = math.inf
            if crash_wanted():
                log("Crash on demand (SGLANG_STANDIN_CRASH_AFTER): failing the scheduler", sys.stderr)
                os.kill(children[0].pid, signal.SIGUSR1)
        time.sleep(0.02)
    log("Received sigterm. Gracefully exiting: draining requests.")
    time.sleep(env_float("SGLANG_STANDIN_DRAIN_SECONDS", 0.2))
    server.shutdown()
    server.server_close()


def main() -> None:
    args = parse_args(sys.argv[1:])
    log(f"server_args=ServerArgs({', '.join(f'{k}={v!r}' for k, v in vars(args).items())})")
    if os.environ.get("SGLANG_STANDIN_CRASH_AT_START") == "1" and crash_wanted():
        log("Crash on demand at start (SGLANG_STANDIN_CRASH_AT_START=1)", sys.stderr)
        sys.exit(1)
    signal.signal(signal.SIGQUIT, kill_process_tree)
    spawn_children()
    try:
        if os.environ.get("SGLANG_STANDIN_RECORD"):
            write_record(os.environ["SGLANG_STANDIN_RECORD"], args)
        log("Load weight begin.")
        time.sleep(env_float("SGLANG_STANDIN_LOAD_SECONDS", 0.5))
        try:
            server = Server(Status(args))
        except OSError as error:
            log(f"ERROR: could not bind {args.host}:{args.port}: {error}", sys.stderr)
            sys.exit(1)
        signal.signal(signal.SIGTERM, lambda signum, frame: setattr(server.status, "exiting", True))
        serve(server)
    finally:
        end_children()
    log("Shutdown complete.")


if __name__ == "__main__":
    main()
