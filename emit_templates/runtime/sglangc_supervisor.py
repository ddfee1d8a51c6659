"""sglangc runtime: supervisord's extension for `check-and-run-sglang.sh reload`.

supervisorctl's `update` replaces a whole group when one of its programs changes, which restarts every
server in it. `reload` must add, remove and replace single programs of the deployment's group and leave
the others running, so supervisord gets one more XML-RPC method:

    sglangc.updateGroup(name)   read the conf again, then bring group `name` in line with it: add its new
                                programs, drop those it no longer lists, replace those whose program section
                                changed. Programs to drop or replace must be stopped first: while one still
                                runs, nothing is changed and the result lists it under "busy".

The conf's [rpcinterface:sglangc] section loads this file; check-and-run-sglang.sh starts supervisord with
its directory on PYTHONPATH (and the file takes it off again, so the servers inherit the caller's PYTHONPATH).

Run as a script by check-and-run-sglang.sh, with the Python that runs supervisord:

    python sglangc_supervisor.py CONF GROUP

calls that method through the conf's socket and prints one line per change ("added NAME", "removed NAME",
"replaced NAME", "busy NAME"). Exit status: 0 applied, 3 busy programs must be stopped first, 1 failed.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ("added", "removed", "replaced", "busy")


class Interface:
    def __init__(self, supervisord):
        self.supervisord = supervisord

    def updateGroup(self, name):  # XML-RPC method names are camelCase in supervisord
        """Apply the conf's current programs of group `name`, leaving unchanged programs as they are.

        @param string name  the group
        @return struct      lists of program names: added, removed, replaced, busy
        """
        from supervisor.states import STOPPED_STATES, SupervisorStates
        from supervisor.xmlrpc import Faults, RPCError

        sd = self.supervisord
        if sd.options.mood < SupervisorStates.RUNNING:
            raise RPCError(Faults.SHUTDOWN_STATE)
        try:
            sd.options.process_config(do_usage=False)
        except ValueError as e:
            raise RPCError(Faults.CANT_REREAD, str(e)) from e
        result: dict[str, list[str]] = {kind: [] for kind in KINDS}
        new = next((g for g in sd.options.process_group_configs if g.name == name), None)
        group = sd.process_groups.get(name)
        if group is None:
            if new is not None:
                sd.add_process_group(new)
                result["added"] = sorted(c.name for c in new.process_configs)
            return result
        configs = {c.name: c for c in new.process_configs} if new is not None else {}
        result["removed"] = sorted(n for n in group.processes if n not in configs)
        result["replaced"] = sorted(n for n, p in group.processes.items() if n in configs and configs[n] != p.config)
        result["added"] = sorted(n for n in configs if n not in group.processes)
        result["busy"] = sorted(
            n for n in result["removed"] + result["replaced"] if group.processes[n].get_state() not in STOPPED_STATES
        )
        if result["busy"]:
            return {**{kind: [] for kind in KINDS}, "busy": result["busy"]}
        if new is None:
            sd.remove_process_group(name)
            return result
        for n in result["removed"] + result["replaced"]:
            del group.processes[n]
        for n in result["added"] + result["replaced"]:
            configs[n].create_autochildlogs()
            group.processes[n] = configs[n].make_process(group)
        group.config = new
        return result


def make_interface(supervisord, **config):
    """supervisord's factory for [rpcinterface:sglangc]."""
    kept = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.abspath(p) != HERE]
    if kept:
        os.environ["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        os.environ.pop("PYTHONPATH", None)
    return Interface(supervisord)


def main(argv):
    import xmlrpc.client

    from supervisor.options import ClientOptions
    from supervisor.xmlrpc import SupervisorTransport

    if len(argv) != 3:
        print("usage: sglangc_supervisor.py CONF GROUP", file=sys.stderr)
        return 2
    options = ClientOptions()
    options.realize(["-c", argv[1]])
    transport = SupervisorTransport(options.username, options.password, options.serverurl)
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    try:
        result: dict = proxy.sglangc.updateGroup(argv[2])  # type: ignore[assignment]
    except xmlrpc.client.Fault as e:
        if "UNKNOWN_METHOD" in e.faultString:
            print("this supervisord runs without sglangc's extension (started by another tool?)", file=sys.stderr)
        else:
            print(e.faultString, file=sys.stderr)
        return 1
    except OSError as e:
        print(f"cannot reach supervisord at {options.serverurl}: {e}", file=sys.stderr)
        return 1
    for kind in KINDS:
        for name in result.get(kind, []):
            print(kind, name)
    return 3 if result.get("busy") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
