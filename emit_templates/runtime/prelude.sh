# shellcheck shell=bash
# sglangc runtime prelude: messages, on/off gates, $PREFIX, /proc parsing, an HTTP probe, JSON strings, private
# directories, descriptors and environment activation.
#
# Sourced first by every generated bash script of a deployment (launch-<name>.sh, check-and-run-sglang.sh,
# install-sglang-offline.sh). The sourcing script sets `me` (the name its messages start with) and, for
# resolve_prefix, `default_project_dir` and `default_environment` (compiled from the config). Nothing here
# runs on its own: it only defines functions.

# Messages: `say` on stdout, `warn` and `die` on stderr; `die CODE MESSAGE...` exits with CODE. With
# stamped=1 (a launch script's run, the installer: what they print ends up in logs) each line begins with the
# UTC time, e.g. "2026-12-01T11:51:51Z launch-glm47: ...".
died=0
stamped=0
stamp=""
when() {
  stamp=""
  [ "$stamped" = 1 ] || return 0
  TZ=UTC0 printf -v stamp '%(%Y-%m-%dT%H:%M:%SZ)T ' -1
}
say() { when; printf '%s%s: %s\n' "$stamp" "$me" "$*"; }
warn() { when; printf '%s%s: warning: %s\n' "$stamp" "$me" "$*" >&2; }
die() {
  local code=$1
  shift
  died=1
  when
  printf '%s%s: error: %s\n' "$stamp" "$me" "$*" >&2
  exit "$code"
}

# Gates: `on` for 1/true/yes/on, `off` for 0/false/no/off (any case); anything else is neither.
on() {
  case ${1-} in
    1 | [Tt][Rr][Uu][Ee] | [Yy][Ee][Ss] | [Oo][Nn]) return 0 ;;
  esac
  return 1
}
off() {
  case ${1-} in
    0 | [Ff][Aa][Ll][Ss][Ee] | [Nn][Oo] | [Oo][Ff][Ff]) return 0 ;;
  esac
  return 1
}

# The installed environment: PREFIX=<project dir>/.pixi/envs/<environment>, from the AUTO_INFER_SGLANG_*
# variables, else the compiled defaults. Sets project_dir, environment and PREFIX.
resolve_prefix() {
  project_dir=${AUTO_INFER_SGLANG_PIXI_PROJECT_DIR:-$default_project_dir}
  environment=${AUTO_INFER_SGLANG_PIXI_ENVIRONMENT:-$default_environment}
  PREFIX="$project_dir/.pixi/envs/$environment"
}

# Activate the environment at $1 as `pixi run` or pixi-unpack's activate.sh would, without Python: its bin/
# first on PATH, CONDA_PREFIX, and each of its etc/conda/activate.d/*.sh sourced (conda packages such as a
# CUDA toolkit set CUDA_HOME there; FlashInfer's and DeepGEMM's JIT builds look for nvcc and ninja on PATH).
# The activation scripts run without -e and -u, which they are not written for.
activate_env() {
  local script
  export CONDA_PREFIX="$1"
  export PATH="$1/bin${PATH:+:$PATH}"
  for script in "$1"/etc/conda/activate.d/*.sh; do
    [ -f "$script" ] || continue
    set +eu
    # shellcheck source=/dev/null
    . "$script"
    set -eu
  done
}

# A JSON string literal: backslash, quote and control characters escaped (the installer's marker, status
# --format json).
json_string() {
  local s=$1 out="" c
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  if [[ $s == *[[:cntrl:]]* ]]; then
    while [ -n "$s" ]; do
      c=${s:0:1}
      s=${s:1}
      if [[ $c == [[:cntrl:]] ]]; then
        printf -v c '\\u%04x' "'$c"
      fi
      out+=$c
    done
    s=$out
  fi
  printf '"%s"' "$s"
}

# The forms secrets take in SGLang's log (as written, and as Python's repr() writes them: backslashes doubled,
# ' escaped when " is in the value too), collected in `secret_forms` by add_secret_forms VALUE...; `redact LINE`
# puts the line with every form replaced by <redacted> in `redacted`.
secret_forms=() redacted=""
add_secret_forms() {
  local value form
  for value; do
    [ -n "$value" ] || continue
    form=${value//\\/\\\\}
    secret_forms+=("$value" "$form" "${form//\'/\\\'}")
  done
}
redact() {
  local line=$1 form
  for form in "${secret_forms[@]}"; do
    line=${line//"$form"/<redacted>}
  done
  redacted=$line
}

# Microseconds since the epoch (EPOCHREALTIME, bash >= 5; its radix character may be a comma).
now_us() {
  if [ -n "${EPOCHREALTIME-}" ]; then
    printf '%s' "${EPOCHREALTIME//[!0-9]/}"
  else
    date +%s%6N
  fi
}

# The state letter of process $1 (R, S, Z, …) in proc_state, its parent in proc_ppid, its process group in
# proc_pgrp and its start time (clock ticks since boot: with the pid, what tells this process from a later
# one that got the same pid) in proc_start; fails when there is no such process.
proc_state="" proc_ppid="" proc_pgrp="" proc_start=""
proc_stat() {
  local stat
  proc_state="" proc_ppid="" proc_pgrp="" proc_start=""
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  # fields 3 (state), 4 (ppid), 5 (pgrp), then 6 to 21, then 22 (starttime)
  read -r proc_state proc_ppid proc_pgrp _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ proc_start _ <<<"${stat##*) }"
}

# Whether process $1 is alive (a zombie counts as gone).
alive() {
  [ -n "$1" ] && proc_stat "$1" && [ "$proc_state" != Z ] && [ "$proc_state" != X ]
}

# The command line of process $1 as the array proc_argv; fails when it cannot be read.
proc_argv=()
proc_cmdline() {
  proc_argv=()
  mapfile -d '' -t proc_argv 2>/dev/null <"/proc/$1/cmdline"
}

# Whether process group $1 still has a live (non-zombie) member.
group_alive() {
  local f pid
  kill -0 -- "-$1" 2>/dev/null || return 1
  for f in /proc/[0-9]*/stat; do
    pid=${f#/proc/}
    pid=${pid%/stat}
    if proc_stat "$pid" && [ "$proc_pgrp" = "$1" ] && [ "$proc_state" != Z ] && [ "$proc_state" != X ]; then
      return 0
    fi
  done
  return 1
}

# Whether TCP port $1 has a listener on any address (from /proc: works without ss or netstat).
port_listening() {
  local hex f _sl local_address _remote state
  printf -v hex '%04X' "$1"
  for f in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$f" ] || continue
    while read -r _sl local_address _remote state _; do
      if [ "$state" = 0A ] && [ "${local_address##*:}" = "$hex" ]; then
        return 0
      fi
    done <"$f"
  done
  return 1
}

# The status code of HTTP GET $1:$2$3, or nothing; $4: seconds to wait for each line (default 30).
# bash /dev/tcp, because curl may be missing; reads the whole answer before closing, so servers log no
# broken pipe.
http_status() {
  local line status=""
  exec 3<>"/dev/tcp/$1/$2" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$3" "$1" >&3
  if IFS= read -r -t "${4:-30}" line <&3; then
    status=${line#* }
    status=${status%% *}
    while IFS= read -r -t "${4:-30}" _ <&3; do :; done
  fi
  exec 3<&-
  printf '%s' "$status"
}

# Close every descriptor above 2 that this (sub)shell inherited, so that what it starts in the background
# keeps no pipe or file of the caller's open (an entrypoint waiting for EOF on one would wait forever). Call it
# in the subshell that then execs the background program.
close_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    if [[ $fd =~ ^[0-9]+$ ]] && [ "$fd" -gt 2 ]; then
      { exec {fd}>&-; } 2>/dev/null || :
    fi
  done
}

# private_dir DIR [create]: whether DIR is fit to hold this deployment's private files (pid files, keys,
# sockets, logs): a real directory (not a symlink) of the user running this (uid $EUID), not writable by
# anyone else, below directories that are each owned by root or this user and, when every user may write
# them, sticky (like /tmp), so that no other user can swap DIR or a directory above it for one of theirs.
# With `create`, a missing DIR is made (mode 0700 under the caller's umask 077). DIR is made mode 0700.
# Fails with the reason in `unsafe`.
unsafe=""
private_dir() {
  local dir=$1 create=${2-} path="" part owner mode name real
  local -a parts=() ancestors=(/)
  unsafe=""
  [[ $dir == /* ]] || dir="$PWD/$dir"
  IFS=/ read -r -a parts <<<"${dir#/}"
  for part in "${parts[@]}"; do
    [ -n "$part" ] || continue
    path+="/$part"
    [ "$path" != "$dir" ] || break
    [ -e "$path" ] || [ -L "$path" ] || break
    ancestors+=("$path")
  done
  # the directories above, as named and as resolved (a symlink on the way, such as /var/run, is checked
  # for who owns it; where it leads is checked as the resolved path)
  if real=$(readlink -f -- "${ancestors[-1]}" 2>/dev/null) && [ "$real" != "${ancestors[-1]}" ]; then
    path=""
    IFS=/ read -r -a parts <<<"${real#/}"
    for part in "${parts[@]}"; do
      [ -z "$part" ] || { path+="/$part"; ancestors+=("$path"); }
    done
  fi
  while read -r owner mode name; do
    if [ "$owner" != 0 ] && [ "$owner" != "$EUID" ]; then
      unsafe="$name belongs to uid $owner, neither root nor uid $EUID (who runs this): that user could swap $dir"
      return 1
    fi
    mode=$((16#$mode))
    if [ $((mode & 8#170000)) = $((8#040000)) ] && [ $((mode & 8#002)) != 0 ] && [ $((mode & 8#1000)) = 0 ]; then
      unsafe="every user may write $name and it is not sticky: another user could swap $dir"
      return 1
    fi
  done < <(stat -c '%u %f %n' -- "${ancestors[@]}" 2>/dev/null)
  if [ -n "$create" ] && [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
    mkdir -p -- "$dir" 2>/dev/null || [ -d "$dir" ] || { unsafe="cannot create $dir"; return 1; }
  fi
  if [ -L "$dir" ]; then
    unsafe="$dir is a symbolic link; it must be a directory of its own"
    return 1
  fi
  [ -d "$dir" ] || { unsafe="$dir is not a directory"; return 1; }
  read -r owner mode < <(stat -c '%u %a' -- "$dir" 2>/dev/null) || { unsafe="cannot stat $dir"; return 1; }
  if [ "$owner" != "$EUID" ]; then
    unsafe="$dir belongs to uid $owner, not to uid $EUID (who runs this)"
    return 1
  fi
  if [ $((8#$mode & 8#022)) != 0 ]; then
    unsafe="$dir is writable by other users (mode $mode); make it 0700 or remove it"
    return 1
  fi
  chmod 0700 -- "$dir" 2>/dev/null || { unsafe="cannot chmod 0700 $dir"; return 1; }
}

# A launch script's run (launch.sh, gateway.sh; they set name, pid_file and settle_seconds). A check that failed
# is recorded beside the pid file (code, parent's pid, time, reason): the runner's status shows the reason, and
# supervisord's retries within settle_seconds end at once with the same code instead of printing the same error
# again (`start` and `restart` clear it). `begin_run WHAT` ends such a retry at once, then writes the one marker
# line that begins every run in the log (the runner shows tails from the latest one only); from there on every
# line begins with the UTC time. `fail_check CODE` records the failure in `why` and exits with CODE.
begin_run() {
  local code ppid when
  failed="${pid_file:?}"
  failed="${failed%/*}/.${name:?}.failed"
  if [ "${SUPERVISOR_ENABLED-}" = 1 ] && read -r code ppid when _ 2>/dev/null <"$failed" &&
    [ "$ppid" = "$PPID" ] && [ $((EPOCHSECONDS - when)) -lt "${settle_seconds:?}" ]; then
    exit "$code"
  fi
  stamped=1
  say "=== run begins (pid $$): $* ==="
}
fail_check() {
  if [ -d "${failed%/*}" ]; then
    printf '%s %s %s %s\n' "$1" "$PPID" "$EPOCHSECONDS" "${why-}" >"$failed" 2>/dev/null || :
  fi
  die "$1" "${why-}"
}

# What a launch script's --dry-run prints on stdout: `print_command EXPORTS WORD...` writes a NAME=VALUE line
# for each entry of the array named EXPORTS, then the words on one line, each quoted the way Python's
# shlex.quote does (`quote` leaves it in `quoted`), so that shlex.split reads them back exactly.
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
print_command() {
  local -n pairs=$1
  local kv word line=""
  shift
  for kv in "${pairs[@]}"; do
    quote "${kv#*=}"
    printf '%s=%s\n' "${kv%%=*}" "$quoted"
  done
  for word in "$@"; do
    quote "$word"
    line+="${line:+ }$quoted"
  done
  printf '%s\n' "$line"
}
