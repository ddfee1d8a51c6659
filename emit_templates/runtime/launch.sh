# shellcheck shell=bash
# sglangc runtime: the body of every launch-<name>.sh.
#
# Starts one SGLang instance: checks what it needs, waits for the instances it depends on (or shares a GPU
# with), then execs the server in its activated environment, so that signals reach SGLang itself.
#   launch-<name>.sh              check, wait, start (supervisord or check-and-run-sglang.sh runs this)
#   launch-<name>.sh --dry-run    print the variables and the command; start nothing, need nothing
#   launch-<name>.sh --preflight  run every check, one line each; start nothing; exit with the first failure
#   launch-<name>.sh --help
#
# The generated launch-<name>.sh sets these, then sources lib/prelude.sh and this file:
#   name, me                   the instance and the message prefix (launch-<name>)
#   default_project_dir,       where the environment lives, unless AUTO_INFER_SGLANG_PIXI_PROJECT_DIR /
#   default_environment        AUTO_INFER_SGLANG_PIXI_ENVIRONMENT say otherwise
#   model_path host port       what SGLang serves, and where
#   gpus                       the GPU ids it runs on (CUDA_VISIBLE_DEVICES), checked against nvidia-smi
#   weight_split               how many GPUs one copy of the weights is split over (tp × pp)
#   memory_fraction            the share of each GPU's memory SGLang may fill (mem_fraction_static; when
#   memory_percent             unset, the most SGLang's own choice takes), and the same in percent
#   installer                  the installer to name when the environment is missing
#   downloader                 the command that downloads the model, to name when it is missing ('' when the
#                              instance has no download table)
#   ready_timeout              seconds to wait for each instance in `waits`
#   runtime_dir                the deployment's private runtime directory (pid files, secret files)
#   pid_file                   where the server's pid is recorded, with its start time
#   settle_seconds             how long a failed check stands for supervisord's retries of this start
#   cache_dir                  where kernel and compile caches persist across container restarts ('': in the
#                              project directory, $project_dir/.cache/sglang)
#   secret_file                the private YAML file SGLang reads its secrets from (--config); empty without
#   secrets                    pairs: the YAML key (a flag name: api-key, admin-api-key, …) and the variable
#                              that holds its value at launch
#   dist_init_env              the variable holding node 0's HOST:PORT for a multi-node instance, added to
#                              argv as --dist-init-addr at launch ('' when argv has it, or needs none)
#   exports                    NAME=VALUE words, exported in order
#   waits                      name, probe address and port of each instance to wait for, flat
#   argv                       the arguments after `python -m sglang.launch_server`
#
# Exit codes: 2 usage, 10 environment not installed, 11 model missing, 12 weight shards missing,
# 13 port in use, 14 GPU missing, 15 a secret's variable unset, 16 a secret unusable, 17 dependency not ready,
# 18 runtime directory unusable, 19 the weights do not fit the GPUs' memory, 20 the dist-init address
# variable unset or not HOST:PORT.

umask 077 # what this script and the server create is the deployment's own
resolve_prefix
cache_dir=${cache_dir:-$project_dir/.cache/sglang}

usage() {
  printf '%s\n' "usage: $0 [--dry-run | --preflight | --help]" \
    "Starts SGLang instance $name on $host:$port with GPUs $gpus (supervisord or check-and-run-sglang.sh runs it)." \
    "  --dry-run    print the variables and the command it would run; start nothing" \
    "  --preflight  run every check, one line each; start nothing; exit with the first failing check's code" \
    "exit codes: 2 usage, 10 environment not installed, 11 model missing, 12 weight shards missing," \
    "13 port in use, 14 GPU missing, 15 a secret's variable unset, 16 a secret unusable, 17 dependency not" \
    "ready, 18 runtime directory unusable, 19 the weights do not fit the GPUs' memory, 20 the dist-init" \
    "address variable unset or not HOST:PORT"
}

# The kernel and compile caches: one directory per environment, GPU model and instance below cache_dir, so
# that no entry is shared by two GPU models, two environments, or two instances (which may share a GPU, and
# must then not share FlashInfer's autotune results). Each variable the environment already sets is kept.
# SGLANG_JIT_CACHE_DIR does not follow SGLANG_CACHE_DIR (it defaults to ~/.cache/sglang/jit): set it too.
cache_vars=()
plan_caches() {
  local model="" root
  if command -v nvidia-smi >/dev/null 2>&1; then
    model=$(nvidia-smi --query-gpu=name --format=csv,noheader -i "${gpus%%,*}" 2>/dev/null | head -n 1) || model=""
  fi
  model=${model//[^A-Za-z0-9._-]/-}
  root="$cache_dir/$environment/${model:-no-gpu}/$name"
  cache_vars=(
    "SGLANG_CACHE_DIR=$root"
    "SGLANG_JIT_CACHE_DIR=$root/jit"
    "SGLANG_DG_CACHE_DIR=$root/deep_gemm"
    "TRITON_CACHE_DIR=$root/triton"
    "TORCHINDUCTOR_CACHE_DIR=$root/inductor"
    "CUDA_CACHE_PATH=$root/nv"
    "TILELANG_CACHE_DIR=$root/tilelang"
    "FLASHINFER_WORKSPACE_BASE=$root"
  )
}

# What the script exports: the compiled exports, then the caches the environment does not set already.
all_exports=()
plan_exports() {
  local kv key
  local -A given=()
  all_exports=("${exports[@]}")
  for kv in "${exports[@]}"; do given[${kv%%=*}]=1; done
  plan_caches
  for kv in "${cache_vars[@]}"; do
    key=${kv%%=*}
    if [ -z "${given[$key]:-}" ] && [ -z "${!key:-}" ]; then
      all_exports+=("$kv")
    fi
  done
}

# With dist_init_env: node 0's rendezvous address, read now, at the end of argv.
add_dist_init() {
  [ -z "$dist_init_env" ] || argv+=(--dist-init-addr "${!dist_init_env:-\$$dist_init_env}")
}

dry_run() {
  local i
  plan_exports
  add_dist_init
  print_command all_exports "$PREFIX/bin/python" -m sglang.launch_server "${argv[@]}"
  # the rest is for people, on stderr: stdout stays exactly the variables and the command
  for ((i = 0; i < ${#waits[@]}; i += 3)); do
    printf '%s: waits first for %s (http://%s:%s/health)\n' "$me" "${waits[i]}" "${waits[i + 1]}" "${waits[i + 2]}" >&2
  done
  if [ -n "$dist_init_env" ] && [ -z "${!dist_init_env:-}" ]; then
    printf '%s: reads --dist-init-addr from the variable %s at launch (unset now)\n' "$me" "$dist_init_env" >&2
  fi
  for ((i = 0; i < ${#secrets[@]}; i += 2)); do
    printf '%s: reads %s from the variable %s at launch\n' "$me" \
      "$([ "${secrets[i]}" = api-key ] && echo "the API key" || echo "--${secrets[i]}")" "${secrets[i + 1]}" >&2
  done
}

# ---------------------------------------------------------------------------------------------------------
# Checks: each sets `why` and returns its exit code (0: fine); `fine` says what was found when all is well,
# `unchecked` what it could not check although it should have (a warning at launch).
why="" fine="" unchecked=""

check_environment() {
  fine="SGLang environment at $PREFIX"
  [ -x "$PREFIX/bin/python" ] && return 0
  why="SGLang environment not installed at $PREFIX; install it with $installer (or boot with AUTO_INFER_SGLANG_BUNDLE_ON_BOOT=1)"
  return 10
}

check_model() {
  fine="model $model_path"
  [[ $model_path == /* ]] || { fine="model $model_path (a hub id: not checked here)"; return 0; }
  if [ ! -d "$model_path" ] && [ -n "$downloader" ]; then
    why="model directory $model_path does not exist; download it with $downloader (or boot with AUTO_INFER_SGLANG_DOWNLOAD_ON_BOOT=1)"
    return 11
  fi
  [ -d "$model_path" ] || { why="model directory $model_path does not exist (is the model volume mounted?)"; return 11; }
  [ -f "$model_path/config.json" ] || { why="model directory $model_path has no config.json"; return 11; }
}

check_shards() {
  local index="$model_path/model.safetensors.index.json" shard
  local -a missing=()
  fine="weight shards: no model.safetensors.index.json to check against"
  [[ $model_path == /* ]] && [ -f "$index" ] || return 0
  while IFS= read -r shard; do
    [ -s "$model_path/$shard" ] || missing+=("$shard")
  done < <(grep -o '"[^"/]*\.safetensors"' "$index" | tr -d '"' | sort -u)
  fine="every weight shard $index names is there"
  [ "${#missing[@]}" -gt 0 ] || return 0
  why="$index names ${#missing[@]} weight shard(s) missing or empty in $model_path (incomplete download?): ${missing[*]:0:5}"
  return 12
}

check_port() {
  fine="port $port is free"
  port_listening "$port" || return 0
  why="port $port is already in use by another process; stop it or give instance $name another port"
  return 13
}

# nvidia-smi's GPU list, read once: `gpu_list` ('' when there is no nvidia-smi or it fails).
gpu_list="" gpu_list_read=0
read_gpus() {
  [ "$gpu_list_read" = 0 ] || return 0
  gpu_list_read=1
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  gpu_list=$(nvidia-smi -L 2>/dev/null) || gpu_list=""
}

check_gpus() {
  local visible highest=0 g
  read_gpus
  fine="GPUs not checked: no nvidia-smi"
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  fine="GPUs not checked: nvidia-smi -L failed"
  [ -n "$gpu_list" ] || { unchecked="nvidia-smi -L failed; GPU ids not checked"; return 0; }
  visible=$(grep -c '^GPU ' <<<"$gpu_list" || true)
  for g in ${gpus//,/ }; do [ "$g" -le "$highest" ] || highest=$g; done
  fine="GPUs $gpus are there (nvidia-smi -L lists $visible)"
  [ "$highest" -ge "$visible" ] || return 0
  why="GPU $highest is not there: nvidia-smi -L lists $visible GPU(s)"
  return 14
}

# The weights' size in bytes: the index's metadata.total_size, else the sum of the weight files.
weights_bytes() {
  local index="$model_path/model.safetensors.index.json" total="" f size
  local -a files=()
  if [ -f "$index" ]; then
    total=$(grep -o '"total_size"[[:space:]]*:[[:space:]]*[0-9]*' "$index" | head -n 1 | grep -o '[0-9]*$') || total=""
  fi
  if [ -z "$total" ]; then
    files=("$model_path"/*.safetensors)
    [ -e "${files[0]}" ] || files=("$model_path"/*.bin)
    [ -e "${files[0]}" ] || return 1
    total=0
    for f in "${files[@]}"; do
      size=$(stat -L -c %s -- "$f" 2>/dev/null) || continue
      total=$((total + size))
    done
  fi
  printf '%s' "$total"
}

check_memory() {
  local total per_gpu smallest="" mib usable
  fine="GPU memory not checked: no nvidia-smi, or no local weights to size"
  read_gpus
  [ -n "$gpu_list" ] && [[ $model_path == /* ]] || return 0
  total=$(weights_bytes) || return 0
  while IFS= read -r mib; do
    mib=${mib//[^0-9]/}
    [ -n "$mib" ] || continue
    if [ -z "$smallest" ] || [ "$mib" -lt "$smallest" ]; then smallest=$mib; fi
  done < <(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i "$gpus" 2>/dev/null)
  [ -n "$smallest" ] || return 0
  per_gpu=$((total / weight_split))
  usable=$((smallest * 1048576 * memory_percent / 100))
  fine="weights $((total / 1048576)) MiB over $weight_split GPU(s): $((per_gpu / 1048576)) MiB each, of $((usable / 1048576)) MiB usable (${smallest} MiB x $memory_fraction)"
  [ "$per_gpu" -gt "$usable" ] || return 0
  why="the weights do not fit: $((total / 1048576)) MiB over $weight_split GPU(s) is $((per_gpu / 1048576)) MiB per GPU, but each has $smallest MiB x mem_fraction_static $memory_fraction = $((usable / 1048576)) MiB; use more GPUs (tp_size), a quantized checkpoint, or a higher mem_fraction_static"
  return 19
}

check_secrets() {
  local i variable what
  fine="no secrets to read"
  [ "${#secrets[@]}" -gt 0 ] || return 0
  for ((i = 0; i < ${#secrets[@]}; i += 2)); do
    variable=${secrets[i + 1]}
    what="the API key"
    [ "${secrets[i]}" = api-key ] || what="the value of --${secrets[i]}"
    [ -n "${!variable:-}" ] || { why="environment variable $variable is not set; it must hold $what of instance $name"; return 15; }
    case "${!variable}" in
      -*) why="$what in $variable starts with '-', which SGLang's argument parser cannot take"; return 16 ;;
      *[[:cntrl:]]*) why="$what in $variable contains a control character"; return 16 ;;
    esac
  done
  fine="the variable of every secret is set"
}

creating=create # --preflight makes nothing
check_runtime_dir() {
  fine="runtime directory $runtime_dir"
  [ -n "$creating" ] || [ -e "$runtime_dir" ] || { fine="runtime directory $runtime_dir (made at launch)"; return 0; }
  private_dir "$runtime_dir" "$creating" && return 0
  why="unsafe runtime directory: $unsafe"
  return 18
}

check_dist_init() { # only with dist_init_env
  local addr=${!dist_init_env:-}
  fine="dist-init address $addr (from $dist_init_env)"
  [[ $addr == ?*:* && ${addr##*:} =~ ^[0-9]{1,5}$ && ! $addr =~ [[:space:]] ]] && return 0
  why="environment variable $dist_init_env must hold node 0's HOST:PORT for the rendezvous (--dist-init-addr), not '$addr'"
  return 20
}

check_dependencies() { # --preflight only: whether they answer now (the launch itself waits for them)
  local i
  fine="no dependencies"
  [ "${#waits[@]}" -gt 0 ] || return 0
  fine="dependencies ready:"
  for ((i = 0; i < ${#waits[@]}; i += 3)); do
    if [ "$(http_status "${waits[i + 1]}" "${waits[i + 2]}" /health 5 2>/dev/null)" = 200 ]; then
      fine+=" ${waits[i]}"
    else
      fine+=" ${waits[i]} (not yet: the launch waits up to ${ready_timeout}s)"
    fi
  done
}

CHECKS=(environment model shards port gpus memory secrets runtime_dir)
[ -z "$dist_init_env" ] || CHECKS+=(dist_init)

preflight() {
  local check code first=0
  creating=""
  for check in "${CHECKS[@]}" dependencies; do
    why=""
    code=0
    "check_$check" || code=$?
    if [ "$code" = 0 ]; then
      printf '%s: ok: %s\n' "$me" "$fine"
    else
      printf '%s: FAIL (%s): %s\n' "$me" "$code" "$why"
      [ "$first" != 0 ] || first=$code
    fi
  done
  exit "$first"
}

case "${1-}" in
  --dry-run)
    dry_run
    exit 0
    ;;
  --preflight) preflight ;;
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

begin_run "SGLang $name on $host:$port, GPUs $gpus"

for check in "${CHECKS[@]}"; do
  code=0 unchecked=""
  "check_$check" || code=$?
  [ "$code" = 0 ] || fail_check "$code"
  [ -z "$unchecked" ] || warn "$unchecked"
done

plan_exports
for kv in "${all_exports[@]}"; do
  export "${kv?}"
done
for kv in "${cache_vars[@]}"; do
  key=${kv%%=*}
  dir=${!key:-} # the value in force, whoever set it
  [ -z "$dir" ] || mkdir -p -- "$dir" 2>/dev/null || warn "cannot create the cache directory $dir; SGLang may recompile its kernels at every start"
done

if [ -n "$secret_file" ]; then
  # Secrets reach SGLang through a private YAML file (single-quoted values), never on a command line.
  yaml=""
  for ((i = 0; i < ${#secrets[@]}; i += 2)); do
    value=${!secrets[i + 1]}
    yaml+="${secrets[i]}: '${value//\'/\'\'}'"$'\n'
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

# SGLang logs its arguments at start, secrets included (its own redaction covers only watermark secrets):
# with secrets, its output goes through a filter that replaces each one, before any log file sees it.
redact_stream() {
  local line="" rc i
  for ((i = 0; i < ${#secrets[@]}; i += 2)); do
    add_secret_forms "${!secrets[i + 1]}"
  done
  while :; do
    rc=0
    IFS= read -r -t 1 line || rc=$?
    redact "$line"
    line=$redacted
    if [ "$rc" = 0 ]; then
      printf '%s\n' "$line"
    elif [ "$rc" -gt 128 ]; then # a second without a newline (a progress bar): pass on what came so far
      printf '%s' "$line"
    else
      printf '%s' "$line"
      return 0
    fi
    line=""
  done
}
if [ -n "$secret_file" ]; then
  # Through a FIFO in the private runtime directory, to a filter that is not SGLang's child (it ends its
  # whole process tree as it exits, which would cut the log short) and that ignores the signals of a stop:
  # it ends at EOF, once SGLang and its children are gone.
  fifo="$runtime_dir/pids/.$name.log-fifo"
  if ! { rm -f -- "$fifo" && mkfifo -m 0600 -- "$fifo"; }; then
    die 18 "cannot make the log filter's FIFO $fifo"
  fi
  (
    trap '' TERM INT HUP
    redact_stream <"$fifo" &
  )
  exec >"$fifo" 2>&1
  rm -f -- "$fifo"
fi

# Run it as `pixi run` would: the environment activated (its bin/ first on PATH, CONDA_PREFIX, and the
# activation scripts its packages bring, e.g. a CUDA toolkit's CUDA_HOME).
activate_env "$PREFIX"
add_dist_init
say "starting SGLang on $host:$port with GPUs ${CUDA_VISIBLE_DEVICES-}"
exec "$PREFIX/bin/python" -m sglang.launch_server "${argv[@]}"
