"""A scheduler/detokenizer child: ``python -m sglang._child MARKER PARENT_PID``.

Like SGLang's children it asks the kernel for SIGKILL when its parent dies
(``kill_itself_when_parent_died``) and installs no SIGTERM handler.  SIGUSR1
makes it "crash" the way a failing scheduler does: it sends SIGQUIT to the
parent and exits 1.
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def crash(signum, frame):
    print(f"[{sys.argv[1]}] Scheduler hit an exception: crash on demand", file=sys.stderr, flush=True)
    os.kill(int(sys.argv[2]), signal.SIGQUIT)
    os._exit(1)


def main() -> None:
    parent = int(sys.argv[2])
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(0)
    signal.signal(signal.SIGUSR1, crash)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
