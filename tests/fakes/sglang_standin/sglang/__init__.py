"""Stand-in for SGLang's server, for tests only.

Installed as the distribution ``sglang`` so that ``$PREFIX/bin/python -m
sglang.launch_server ARGS`` behaves, as seen from outside, like the real
server: argument parsing from the packaged flag catalog, a process tree with
PDEATHSIG children, a port bound only after "loading", the HTTP endpoints a
launcher probes, SIGTERM/SIGQUIT handling.  See README.md.
"""

__version__ = "0.5.23"
