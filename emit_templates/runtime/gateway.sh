# shellcheck shell=bash
# sglangc runtime: the body of launch-gateway.sh.
#
# Starts SGLang's model gateway (smg) in front of every instance: checks what it needs, writes its keys into a
# private file, then execs the environment's python on lib/gateway.py, which runs smg in-process with the
# keys from that file (never on a command line). smg registers the workers itself and waits for each up to
# its worker start-up timeout (master.ready_timeout), so this script waits for nothing.
#   launch-gateway.sh              check, start (supervisord or check-and-run-sglang.sh runs this)
#   launch-gateway.sh --dry-run    print the variables and the command; start nothing, need nothing
#   launch-gateway.sh --help
#
# The generated launch-gateway.sh sets these, then sources lib/prelude.sh and this file:
#   name, me                   gateway, and the message prefix (launch-gateway)
#   default_project_dir,       where the environment lives, unless AUTO_INFER_SGLANG_PIXI_PROJECT_DIR /
#   default_environment        AUTO_INFER_SGLANG_PIXI_ENVIRONMENT say otherwise
#   host port                  where the gateway listens
#   installer                  the installer to name when the environment is missing
#   runtime_dir                the deployment's private runtime directory (pid files, key files)
#   pid_file                   where the gateway's pid is recorded, with its start time
#   settle_seconds             how long a failed check stands for supervisord's retries of this start
#   secret_file                the private YAML the keys reach smg through
#   key_env                    the variable holding the key clients must send ('' for none)
#   control_key_env            the variable holding the control plane's admin key ('': a random one)
#   exports                    NAME=VALUE words, exported in order
#   argv                       the `smg launch` flags (no keys)
#   lib                        DIR/lib, where gateway.py is
#
# Exit codes: 2 usage, 10 environment not installed, 13 port in use, 15 a key's variable unset, 16 a key
# unusable, 18 runtime directory unusable, 21 smg not installed in the environment.

umask 077
resolve_prefix

usage() {
  printf '%s\n' "usage: $0 [--dry-run | --help]" \
    "Starts SGLang's model gateway (smg) on $host:$port in front of every instance." \
    "  --dry-run    print the variables and the command it would run; start nothing" \
    "exit codes: 2 usage, 10 environment not installed, 13 port in use, 15 a key's variable unset," \
    "16 a key unusable, 18 runtime directory unusable, 21 smg not installed in the environment"
}

command_words=("$PREFIX/bin/python" "$lib/gateway.py" --keys "$secret_file" "${argv[@]}")

dry_run() {
  print_command exports "${command_words[@]}"
  [ -z "$key_env" ] || printf '%s: reads the client key from the variable %s at launch\n' "$me" "$key_env" >&2
  if [ -n "$control_key_env" ]; then
    printf '%s: reads the control-plane key from the variable %s at launch\n' "$me" "$control_key_env" >&2
  else
    printf '%s: makes a random control-plane key at launch (the control plane stays closed)\n' "$me" >&2
  fi
}

why=""
check() {
  local variable
  [ -x "$PREFIX/bin/python" ] || {
    why="SGLang environment not installed at $PREFIX; install it with $installer (or boot with AUTO_INFER_SGLANG_BUNDLE_ON_BOOT=1)"
    return 10
  }
  [ -x "$PREFIX/bin/smg" ] || { why="smg (SGLang's model gateway) is not installed in $PREFIX: use an environment of the Pixi template that has it"; return 21; }
  ! port_listening "$port" || { why="port $port is already in use by another process; stop it or give the gateway another port"; return 13; }
  for variable in $key_env $control_key_env; do
    [ -n "${!variable:-}" ] || { why="environment variable $variable is not set; it must hold a key of the gateway"; return 15; }
    case "${!variable}" in
      *[[:cntrl:]]*) why="the key in $variable contains a control character"; return 16 ;;
    esac
  done
  private_dir "$runtime_dir" create || { why="unsafe runtime directory: $unsafe"; return 18; }
}

case "${1-}" in
  --dry-run)
    dry_run
    exit 0
    ;;
  -h | --help)
    usage
    exit 0
    ;;
  "") ;;
  *)
    usage >&2
    exit 2
    ;;
esac

begin_run "smg on $host:$port"

code=0
check || code=$?
[ "$code" = 0 ] || fail_check "$code"

for kv in "${exports[@]}"; do
  export "${kv?}"
done

# The keys, single-quoted YAML in a private file that gateway.py reads: the client key (when set) and the
# control plane's admin key (from its variable, else random, so that nobody who does not read this file holds it).
if [ -n "$control_key_env" ]; then
  control_key=${!control_key_env}
else
  control_key=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n') || die 18 "cannot read /dev/urandom for the control-plane key"
fi
yaml="control-plane-api-key: '${control_key//\'/\'\'}'"$'\n'
if [ -n "$key_env" ]; then
  value=${!key_env}
  yaml+="api-key: '${value//\'/\'\'}'"$'\n'
fi
unset value control_key
secrets_dir=${secret_file%/*}
{
  mkdir -p -- "$secrets_dir" && tmp=$(mktemp "$secrets_dir/.$name.XXXXXX") &&
    printf '%s' "$yaml" >"$tmp" && mv -f -- "$tmp" "$secret_file"
} || die 18 "cannot write the key file in $secrets_dir"
unset yaml

if ! { proc_stat "$$" && mkdir -p -- "${pid_file%/*}" && printf '%s %s\n' "$$" "$proc_start" >"$pid_file"; }; then
  die 18 "cannot write the pid file $pid_file"
fi

activate_env "$PREFIX"
say "starting smg on $host:$port"
exec "${command_words[@]}"
