# shellcheck shell=bash
# sglangc runtime: the body of every launch-<name>.sh.
#
# Starts one SGLang instance: checks what it needs, waits for the instances it depends on (or shares a GPU
# with), then execs the server, so that signals reach SGLang itself. `--dry-run` prints the variables and
# the command and starts nothing.
#
# The generated launch-<name>.sh sets these, then sources lib/prelude.sh and this file:
#   name, me                   the instance and the message prefix (launch-<name>)
#   default_project_dir,       where the environment lives, unless AUTO_INFER_SGLANG_PIXI_PROJECT_DIR /
#   default_environment        AUTO_INFER_SGLANG_PIXI_ENVIRONMENT say otherwise
#   model_path host port       what SGLang serves, and where
#   highest_gpu                the highest GPU id the instance uses (checked against nvidia-smi -L)
#   installer                  the installer to name when the environment is missing
#   ready_timeout              seconds to wait for each instance in `waits`
#   runtime_dir                the deployment's private runtime directory (pid files, key files)
#   pid_file                   where the server's pid is recorded, with its start time
#   secret_file                the private YAML file SGLang reads its secrets from (--config); empty without
#   secrets                    pairs: the YAML key (a flag name: api-key, admin-api-key, …) and the variable
#                              that holds its value at launch
#   exports                    NAME=VALUE words, exported in order
#   waits                      name, probe address and port of each instance to wait for, flat
#   argv                       the arguments after `python -m sglang.launch_server`
#
# Exit codes: 2 usage, 10 environment not installed, 11 model missing, 12 weight shards missing,
# 13 port in use, 14 GPU missing, 15 API key variable unset, 16 API key unusable, 17 dependency not ready,
# 18 runtime directory unusable.

umask 077 # what this script and the server create is the deployment's own
resolve_prefix

# A word quoted the way Python's shlex.quote does, so that shlex.split reads it back exactly: in `quoted`.
quoted=""
quote() {
  if [ -z "$1" ]; then
    quoted="''"
  elif [[ $1 == *[!A-Za-z0-9_@%+=:,./-]* ]]; then
    quoted="'${1//\'/\'\"\'\"\'}'"
  else
    quoted=$1
  fi
}

dry_run() {
  local kv line w
  for kv in "${exports[@]}"; do
    quote "${kv#*=}"
    printf '%s=%s\n' "${kv%%=*}" "$quoted"
  done
  quote "$PREFIX/bin/python"
  line="$quoted -m sglang.launch_server"
  for w in "${argv[@]}"; do
    quote "$w"
    line+=" $quoted"
  done
  printf '%s\n' "$line"
}

case "${1-}" in
  --dry-run)
    dry_run
    exit 0
    ;;
  "") ;;
  *)
    printf 'usage: %s [--dry-run]\n' "$0" >&2
    exit 2
    ;;
esac

[ -x "$PREFIX/bin/python" ] || die 10 "SGLang environment not installed at $PREFIX; install it with $installer (or boot with AUTO_INFER_SGLANG_BUNDLE_ON_BOOT=1)"

if [[ $model_path == /* ]]; then
  [ -d "$model_path" ] || die 11 "model directory $model_path does not exist (is the model volume mounted?)"
  [ -f "$model_path/config.json" ] || die 11 "model directory $model_path has no config.json"
  index="$model_path/model.safetensors.index.json"
  if [ -f "$index" ]; then
    missing=()
    while IFS= read -r shard; do
      [ -s "$model_path/$shard" ] || missing+=("$shard")
    done < <(grep -o '"[^"/]*\.safetensors"' "$index" | tr -d '"' | sort -u)
    if [ "${#missing[@]}" -gt 0 ]; then
      die 12 "$index names ${#missing[@]} weight shard(s) missing or empty in $model_path (incomplete download?): ${missing[*]:0:5}"
    fi
  fi
fi

if port_listening "$port"; then
  die 13 "port $port is already in use by another process; stop it or give instance $name another port"
fi

if command -v nvidia-smi >/dev/null 2>&1; then
  if gpus=$(nvidia-smi -L 2>/dev/null); then
    visible=$(grep -c '^GPU ' <<<"$gpus" || true)
    if [ "$highest_gpu" -ge "$visible" ]; then
      die 14 "GPU $highest_gpu is not there: nvidia-smi -L lists $visible GPU(s)"
    fi
  else
    warn "nvidia-smi -L failed; GPU ids not checked"
  fi
fi

for kv in "${exports[@]}"; do
  export "${kv?}"
done

private_dir "$runtime_dir" create || die 18 "unsafe runtime directory: $unsafe"

if [ -n "$secret_file" ]; then
  # Secrets reach SGLang through a private YAML file (single-quoted values), never on a command line.
  yaml=""
  for ((i = 0; i < ${#secrets[@]}; i += 2)); do
    key=${secrets[i]} variable=${secrets[i + 1]}
    what="the API key"
    [ "$key" = api-key ] || what="the value of --$key"
    value=${!variable:-}
    [ -n "$value" ] || die 15 "environment variable $variable is not set; it must hold $what of instance $name"
    case "$value" in
      -*) die 16 "$what in $variable starts with '-', which SGLang's argument parser cannot take" ;;
      *[[:cntrl:]]*) die 16 "$what in $variable contains a control character" ;;
    esac
    yaml+="$key: '${value//\'/\'\'}'"$'\n'
  done
  unset value
  secrets_dir=${secret_file%/*}
  {
    mkdir -p -- "$secrets_dir" && tmp=$(mktemp "$secrets_dir/.$name.XXXXXX") &&
      printf '%s' "$yaml" >"$tmp" && mv -f -- "$tmp" "$secret_file"
  } || die 18 "cannot write the secrets file in $secrets_dir"
  unset yaml
fi

if [ "${#waits[@]}" -gt 0 ]; then
  # Wait until every instance this one depends on (or shares a GPU with) answers /health with 200.
  sleeper=""
  trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 143' TERM INT
  deadline=$((SECONDS + ready_timeout))
  for ((i = 0; i < ${#waits[@]}; i += 3)); do
    dep=${waits[i]} dep_host=${waits[i + 1]} dep_port=${waits[i + 2]}
    say "waiting for $dep (http://$dep_host:$dep_port/health)"
    until [ "$(http_status "$dep_host" "$dep_port" /health 2>/dev/null)" = 200 ]; do
      [ "$SECONDS" -lt "$deadline" ] || die 17 "$dep was not ready within ${ready_timeout}s"
      sleep 1 &
      sleeper=$!
      wait "$sleeper" || true
      sleeper=""
    done
    say "$dep is ready"
  done
  trap - TERM INT
fi

# The server keeps this pid (exec) and leads its own process group: with the pid on file, `stop` can end it
# even when supervisord is gone (killed) or was never used.
if ! { proc_stat "$$" && mkdir -p -- "${pid_file%/*}" && printf '%s %s\n' "$$" "$proc_start" >"$pid_file"; }; then
  die 18 "cannot write the pid file $pid_file"
fi

say "starting SGLang on $host:$port with GPUs ${CUDA_VISIBLE_DEVICES-}"
exec "$PREFIX/bin/python" -m sglang.launch_server "${argv[@]}"
