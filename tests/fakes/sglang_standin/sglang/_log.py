import sys
import time


def log(message: str, stream=None) -> None:
    """One SGLang-style log line, flushed at once (tests read the log live)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"[{stamp}] {message}", file=stream or sys.stdout, flush=True)
