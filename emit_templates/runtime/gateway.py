"""sglangc runtime: SGLang's model gateway (smg) started in this process, so that no key is on a command line.

launch-gateway.sh runs it with the environment's python:

    python gateway.py --keys FILE [smg launch flags...]

FILE is the private (mode 0600) YAML the launch script wrote: `api-key` (the key clients must send, which smg
also sends to the workers; absent without one) and `control-plane-api-key` (the admin key of the control
plane). The flags are parsed by smg's own parser, the keys set on its arguments, then smg runs in the
foreground until a signal ends it. It does what `smg launch` does, except for renaming the process (the
runner recognises the gateway by this file's path on its command line).
"""

import sys

import yaml
from smg.launch_router import parse_router_args
from smg.router import Router


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "--keys":
        sys.exit("usage: gateway.py --keys FILE [smg launch flags...]")
    with open(argv[1], encoding="utf-8") as f:
        keys = yaml.safe_load(f) or {}
    args = parse_router_args(argv[2:])
    if keys.get("api-key"):
        args.api_key = str(keys["api-key"])
    args.control_plane_api_keys = [("sglangc", "sglangc", str(keys["control-plane-api-key"]), "admin")]
    args._validate_router_args()
    Router.from_args(args).start()


if __name__ == "__main__":
    main(sys.argv[1:])
