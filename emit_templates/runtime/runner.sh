# shellcheck shell=bash
# sglangc runtime: the body of check-and-run-sglang.sh, which starts, stops and watches the SGLang instances of
# one deployment.
#
# Uses supervisord when one is found (AUTO_INFER_SGLANG_SUPERVISORD, then $PREFIX/bin/supervisord, then PATH),
# plain background processes (one session each, with a pid file) otherwise. Run it with --help for the
# commands.
#
# The generated check-and-run-sglang.sh sets these, then sources lib/prelude.sh and this file:
#   me config conf             the message prefix, the config it was compiled from, its supervisord.conf
#   runtime_dir log_dir        where sockets, pid and key files live; where the logs go
#   default_project_dir,       where the environment lives, unless AUTO_INFER_SGLANG_PIXI_PROJECT_DIR /
#   default_environment        AUTO_INFER_SGLANG_PIXI_ENVIRONMENT report otherwise
#   group master_enable        the supervisord group; whether supervisord starts the instances by itself
#   ready_timeout stop_timeout seconds `wait` waits by default; seconds a server has to stop
#   settle_seconds             how long supervisord may take to call a start RUNNING or FATAL
#   units                      the enabled instances in start order, thirteen words each (see `fields` below)

resolve_prefix

# One array per field of `units`, indexed by instance: name, supervisord program, launch script, probe
# address, port, log file, pid file, secrets file ('' when none), the variables holding its secrets and the
# instances its launch script waits for (both space-separated), yes/no: whether `start` with no names starts
# it (autostart), the path its readiness probe asks for (/health; the gateway's is /readiness), and its
# revision: a hash of its launch script, the runtime that sources and its program section, which `reload`
# compares with the revision it runs at.
fields=13
names=() programs=() launches=() hosts=() ports=() logs=() pid_files=() secrets=() key_envs=() deps=() autostarts=()
probes=() revisions=()
for ((i = 0; i < ${#units[@]}; i += fields)); do
  names+=("${units[i]}") programs+=("${units[i + 1]}") launches+=("${units[i + 2]}") hosts+=("${units[i + 3]}")
  ports+=("${units[i + 4]}") logs+=("${units[i + 5]}") pid_files+=("${units[i + 6]}") secrets+=("${units[i + 7]}")
  key_envs+=("${units[i + 8]}") deps+=("${units[i + 9]}") autostarts+=("${units[i + 10]}") probes+=("${units[i + 11]}")
  revisions+=("${units[i + 12]}")
done
count=${#names[@]}

# probe_envs: name and variable pairs, for ranks > 0 of multi-node instances whose node 0 is named at launch:
# their readiness is node 0's API, on the host that variable's HOST:PORT names.
for ((i = 0; i < ${#probe_envs[@]}; i += 2)); do
  for j in "${!names[@]}"; do
    if [ "${names[j]}" = "${probe_envs[i]}" ]; then
      head=${!probe_envs[i + 1]:-}
      head=${head%:*}
      head=${head#[}
      hosts[j]=${head%]}
    fi
  done
done

usage() {
  printf '%s\n' \
    "usage: $me COMMAND [ARGS]" \
    "" \
    "  start [NAME...]               start the instances (default: those with autostart); starts supervisord" \
    "                                first when it is not running (which then starts the autostart instances" \
    "                                itself unless master.enable is false)" \
    "  stop [NAME...]                stop the instances; with no NAME also supervisord, so nothing is left" \
    "  restart [NAME...]             stop, then start (with no NAME supervisord too: picks up a changed environment)" \
    "  status [NAME...] [--format json]  one line per instance: state, readiness, pid, restarts, last exit and" \
    "                                what it means; exit 0 when all are RUNNING, else 3" \
    "                                (UNSUPERVISED: a server left running by a supervisord that was killed)" \
    "  wait [--timeout S] [NAME...]  wait until the instances answer /health (default timeout ${ready_timeout} s);" \
    "                                exit 0 when all are ready, else 1" \
    "  logs NAME [-f]                the last 200 lines of an instance's log (-f: follow it)" \
    "  reload                        apply a recompiled $me: start new instances (with autostart), stop" \
    "                                removed ones, restart changed ones that run; leave the others running" \
    "" \
    "instances: ${names[*]:-(none enabled)}" \
    "config: $config" \
    "supervisord: \$AUTO_INFER_SGLANG_SUPERVISORD, else $PREFIX/bin/supervisord, else PATH;" \
    "  none found: plain background processes with pid files in $runtime_dir/pids" \
    "exit codes: 0 done, 1 failed, 2 usage, 3 (status) not all running, 4 unsafe runtime or log directory"
}

# A line of the report on stdout (messages about the run go through report, warn and die).
report() { printf '%s\n' "$*"; }

# picked: the indices of the named instances (all when none is named), in start order; unknown name: exit 2.
picked=()
all_picked=1
pick() {
  local want i found
  picked=()
  all_picked=1
  [ "$#" -gt 0 ] || { picked=("${!names[@]}"); return 0; }
  all_picked=0
  for want in "$@"; do
    found=0
    for i in "${!names[@]}"; do
      [ "${names[$i]}" != "$want" ] || found=1
    done
    [ "$found" = 1 ] || die 2 "unknown instance '$want' (instances: ${names[*]:-none enabled})"
  done
  for i in "${!names[@]}"; do
    for want in "$@"; do
      if [ "${names[$i]}" = "$want" ]; then
        picked+=("$i")
        break
      fi
    done
  done
}

# With no names, `start` and `wait` mean the instances with autostart (the others start only by name).
pick_autostart() {
  local i
  local -a kept=()
  pick "$@"
  [ "$#" = 0 ] || return 0
  for i in "${picked[@]}"; do
    [ "${autostarts[$i]}" = no ] || kept+=("$i")
  done
  [ "${#kept[@]}" = "${#picked[@]}" ] || all_picked=0
  picked=("${kept[@]}")
}

# Every secret this environment holds (the API keys, server_args_env), for `redact`: SGLang logs its
# arguments, secrets included.
# shellcheck disable=SC2068 # key_envs[i] holds several variable names, split on purpose
for k in ${key_envs[@]}; do
  add_secret_forms "${!k:-}"
done

# Print the last N lines of instance i's current run (from its launch script's latest "run begins" marker),
# indented, keys redacted.
log_tail() {
  local line from
  [ -f "${logs[$1]}" ] || { report "    (no log at ${logs[$1]})"; return 0; }
  from=$(grep -n -F "launch-${names[$1]}: === run begins " "${logs[$1]}" | tail -n 1) || from=""
  from=${from%%:*}
  report "    --- last $2 lines of ${logs[$1]}${from:+ (this run)} ---"
  while IFS= read -r line || [ -n "$line" ]; do
    redact "$line"
    printf '    %s\n' "$redacted"
  done < <(tail -n "+${from:-1}" -- "${logs[$1]}" | tail -n "$2")
}

ready() { [ "$(http_status "${hosts[$1]}" "${ports[$1]}" "${probes[$1]}" 5 2>/dev/null)" = 200 ]; }

# Whether unit $1 is the gateway (SGLang's model gateway, smg): the row whose probe is smg's /readiness.
is_gateway() { [ "${probes[$1]}" = /readiness ]; }

# The workers the gateway (unit $1) sees healthy, by name, from its control plane (GET /workers, with the admin
# key its launch script wrote into its private key file): `seen` ('' when it cannot be asked), `seen_of`.
seen="" seen_n=0 seen_of=0
gateway_workers() {
  local key="" line body="" url healthy j
  seen="" seen_n=0 seen_of=0
  [ -r "${secrets[$1]}" ] || return 1
  while IFS= read -r line; do
    [[ $line =~ ^control-plane-api-key:\ \'(.*)\'$ ]] && key=${BASH_REMATCH[1]//\'\'/\'}
  done <"${secrets[$1]}"
  [ -n "$key" ] || return 1
  exec 3<>"/dev/tcp/${hosts[$1]}/${ports[$1]}" || return 1
  printf 'GET /workers HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' "${hosts[$1]}" "$key" >&3
  while IFS= read -r -t 5 line <&3 || [ -n "$line" ]; do
    body+=$line
    line=""
  done
  exec 3<&-
  url=""
  while IFS= read -r line; do
    case $line in
      '"url":"'*) url=${line#'"url":"'} url=${url%'"'} ;;
      '"is_healthy":'*)
        healthy=${line#'"is_healthy":'}
        seen_of=$((seen_of + 1))
        for j in "${!names[@]}"; do
          if [ "$healthy" = true ] && ! is_gateway "$j" &&
            { [ "$url" = "http://${hosts[$j]}:${ports[$j]}" ] || [ "$url" = "http://[${hosts[$j]}]:${ports[$j]}" ]; }; then
            seen+="${seen:+, }${names[$j]}"
            seen_n=$((seen_n + 1))
          fi
        done
        ;;
    esac
  done < <(grep -o -E '"url":"[^"]*"|"is_healthy":(true|false)' <<<"$body")
}

# Whether pid $1 runs instance $2: its launch script, or the SGLang server on its port that it became.
ours() {
  local w prev="" server=0 port=0
  proc_cmdline "$1" || return 1
  for w in "${proc_argv[@]}"; do
    [ "$w" != "${launches[$2]}" ] || return 0
    [ "$w" != sglang.launch_server ] && [ "$w" != "$lib/gateway.py" ] || server=1
    if [ "$prev" = --port ] && [ "$w" = "${ports[$2]}" ]; then
      port=1
    fi
    prev=$w
  done
  [ "$server" = 1 ] && [ "$port" = 1 ]
}

# The runtime and log directories, made (0700) or verified: a directory another user owns, can write or has
# replaced by a symlink is refused (exit 4), since pid files, keys, the socket and the logs live there.
ensure_dirs() {
  local i
  private_dir "$runtime_dir" create || die 4 "unsafe runtime directory: $unsafe"
  mkdir -p -- "$runtime_dir/pids" "$runtime_dir/secrets" "$runtime_dir/supervisor" ||
    die 4 "cannot create the directories in $runtime_dir"
  private_dir "$log_dir" create || die 4 "unsafe log directory: $unsafe"
  for i in "${!names[@]}"; do
    : >>"${logs[$i]}" || die 4 "cannot write the log file ${logs[$i]}"
    chmod 0600 -- "${logs[$i]}"
  done
}

# Before reading anything in the runtime directory (pid files name processes to signal): refused like above.
verify_runtime_dir() {
  if [ -e "$runtime_dir" ] || [ -L "$runtime_dir" ]; then
    private_dir "$runtime_dir" || die 4 "unsafe runtime directory: $unsafe"
  fi
}

remove_secrets() {
  local i
  for i in "${picked[@]}"; do
    [ -z "${secrets[$i]}" ] || rm -f -- "${secrets[$i]}"
  done
}

# ---------------------------------------------------------------------------------------------------------
# supervisord mode

supervisord=""
supervisorctl=""
find_supervisord() {
  local candidate=${AUTO_INFER_SGLANG_SUPERVISORD:-}
  if [ -n "$candidate" ]; then
    if [[ $candidate != */* ]]; then
      candidate=$(type -P "$candidate") || die 1 "AUTO_INFER_SGLANG_SUPERVISORD=${AUTO_INFER_SGLANG_SUPERVISORD} is not on PATH"
    fi
    if [ ! -f "$candidate" ] || [ ! -x "$candidate" ]; then
      die 1 "AUTO_INFER_SGLANG_SUPERVISORD=$candidate is not an executable file"
    fi
  elif [ -x "$PREFIX/bin/supervisord" ]; then
    candidate=$PREFIX/bin/supervisord
  else
    candidate=$(type -P supervisord) || return 0
  fi
  supervisord=$candidate
  supervisorctl=${candidate%/*}/supervisorctl
  if [ ! -x "$supervisorctl" ]; then
    supervisorctl=$(type -P supervisorctl) || die 1 "found $supervisord but no supervisorctl beside it or on PATH"
  fi
}

ctl() { "$supervisorctl" -c "$conf" "$@"; }

# The mode is chosen once, by `start`, and recorded in the runtime directory: every later command follows the
# record (whatever its caller's PATH or environment) until `stop` of everything ends it. Without a record the
# mode is what find_supervisord finds.
state_file="$runtime_dir/state"
recorded=""
choose_mode() {
  local key value
  local -A state=()
  if [ -f "$state_file" ] && [ ! -L "$state_file" ]; then
    while IFS='=' read -r key value; do
      [ -z "$key" ] || state[$key]=$value
    done <"$state_file"
  fi
  case ${state[mode]:-} in
    supervisord)
      recorded=supervisord
      supervisord=${state[supervisord]:-}
      supervisorctl=${state[supervisorctl]:-}
      if [ ! -x "$supervisord" ] || [ ! -x "$supervisorctl" ]; then
        die 1 "the recorded supervisord $supervisord (see $state_file) is gone; run: $0 stop, then start again"
      fi
      if [ -n "${state[pid]:-}" ] && ! alive "${state[pid]}" && [ "$command" != stop ]; then
        warn "supervisord (pid ${state[pid]}, recorded at start) is not running: killed? its servers may run on unsupervised (see status)"
      fi
      ;;
    background) recorded=background ;;
    *) find_supervisord ;;
  esac
}

# `start` records the mode it chose (and which supervisord, once it runs), so that nothing follows another.
record_mode() {
  local tmp
  tmp=$(mktemp "$runtime_dir/.state.XXXXXX") || die 1 "cannot write the state file in $runtime_dir"
  if [ -n "$supervisord" ]; then
    printf 'mode=supervisord\nsupervisord=%s\nsupervisorctl=%s\nconf=%s\npid=%s\n' \
      "$supervisord" "$supervisorctl" "$conf" "$(sv_pid)" >"$tmp"
  else
    printf 'mode=background\n' >"$tmp"
  fi
  mv -f -- "$tmp" "$state_file"
  write_applied # a fresh supervisord or a first start: what runs from now on is this compile's
}

# What `start` and `reload` applied, one line per instance of the compile they ran from: its name, the
# revision it was started at, and (for `reload`, once a recompile has removed it) its supervisord program,
# port, pid file, launch script and secrets file, tab-separated.
applied_file="$runtime_dir/applied"
declare -A applied=()
read_applied() {
  local name rest
  applied=()
  [ -f "$applied_file" ] && [ ! -L "$applied_file" ] || return 0
  while IFS=$'\t' read -r name rest; do
    [ -z "$name" ] || applied[$name]=$rest
  done <"$applied_file"
}
# With instance indices: those are now at their compiled revision, the others as recorded. Without: exactly
# this compile's instances, at their revisions.
write_applied() {
  local i name tmp
  local -a which=("$@")
  if [ "$#" -gt 0 ]; then
    read_applied
  else
    applied=()
    which=("${!names[@]}")
  fi
  for i in "${which[@]}"; do
    applied[${names[$i]}]=$(printf '%s\t%s\t%s\t%s\t%s\t%s' "${revisions[$i]}" "${programs[$i]}" "${ports[$i]}" \
      "${pid_files[$i]}" "${launches[$i]}" "${secrets[$i]}")
  done
  tmp=$(mktemp "$runtime_dir/.applied.XXXXXX") || die 1 "cannot write $applied_file"
  for name in "${!applied[@]}"; do
    printf '%s\t%s\n' "$name" "${applied[$name]}"
  done | LC_ALL=C sort >"$tmp"
  mv -f -- "$tmp" "$applied_file"
}

# supervisorctl status: 0 or 3 when supervisord answers, 4 when it cannot be reached.
sv_up() {
  local rc=0
  ctl status >/dev/null 2>&1 || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 3 ]
}

sv_targets() {
  local i
  targets=()
  if [ "$all_picked" = 1 ]; then
    targets=("$group:*")
  else
    for i in "${picked[@]}"; do
      targets+=("$group:${programs[$i]}")
    done
  fi
}

sv_launch_daemon() {
  local deadline=$((SECONDS + 30))
  report "starting supervisord: $supervisord -c $conf"
  # A socket or pid file left by a killed supervisord does not stop it: it unlinks a stale socket itself.
  # It keeps no descriptor of the caller's beyond 0-2 (it closes those three itself as it daemonizes).
  # lib/ on its path for the conf's [rpcinterface:sglangc] (lib/sglangc_supervisor.py, which `reload` needs).
  if ! (close_fds && PYTHONPATH="$lib${PYTHONPATH:+:$PYTHONPATH}" exec "$supervisord" -c "$conf") </dev/null; then
    sv_up || die 1 "supervisord failed to start; see $runtime_dir/supervisord.log"
    return 0 # another start was quicker
  fi
  until sv_up; do
    [ "$SECONDS" -lt "$deadline" ] || die 1 "supervisord does not answer on its socket; see $runtime_dir/supervisord.log"
    sleep 0.1
  done
}

sv_start() {
  local rc=0
  ensure_dirs
  if ! sv_up; then
    replace_orphans
    sv_launch_daemon
    record_mode # with the new supervisord's pid
    if [ "$all_picked" = 0 ] && [ "$master_enable" = true ]; then
      report "note: supervisord starts the instances with autostart by itself (master.enable is true)"
    fi
  elif [ -z "$recorded" ]; then
    record_mode # a supervisord of this conf already ran: follow it from now on
  fi
  sv_targets
  # One call for all: supervisorctl waits start_seconds per call, not per program.
  # (A program that is already running gives "ERROR (already started)" and exit status 0.)
  ctl start "${targets[@]}" || rc=$?
  sv_settle || rc=1
  if [ "$rc" != 0 ]; then
    warn "not every instance started; see: $0 status, $0 logs NAME"
    return 1
  fi
  local list="" i
  for i in "${picked[@]}"; do list+=" ${names[$i]}"; done
  report "running under supervisord:$list (readiness: $0 wait)"
}

# Programs that supervisord started by itself (autostart) are not waited for by supervisorctl start: wait
# until each is RUNNING (up for start_seconds) or has failed, as supervisorctl start does for the others.
sv_settle() {
  local deadline=$((SECONDS + settle_seconds)) i state busy rc=0
  while :; do
    sv_query || die 1 "supervisord stopped answering; see $runtime_dir/supervisord.log"
    busy=0
    for i in "${picked[@]}"; do
      case ${sv_state[${programs[$i]}]:-UNKNOWN} in
        STARTING | BACKOFF) busy=1 ;;
      esac
    done
    if [ "$busy" = 0 ] || [ "$SECONDS" -ge "$deadline" ]; then
      break
    fi
    sleep 0.2
  done
  for i in "${picked[@]}"; do
    state=${sv_state[${programs[$i]}]:-UNKNOWN}
    case $state in
      RUNNING) ;;
      STARTING | BACKOFF) report "${names[$i]}: still $state after ${settle_seconds} s" ;;
      *)
        sv_last_exit "${programs[$i]}"
        report "${names[$i]}: failed to start ($state: ${sv_desc[${programs[$i]}]:-}${last_exit:+; last exit: $last_exit}) -- see: $0 logs ${names[$i]}"
        rc=1
        ;;
    esac
  done
  return "$rc"
}

sv_pid() {
  local pid=""
  read -r pid 2>/dev/null <"$runtime_dir/supervisord.pid" || true
  printf '%s' "$pid"
}

sv_stop() {
  local rc=0 pid deadline
  if ! sv_up; then
    report "supervisord is not running"
    return 0
  fi
  sv_targets
  local i
  for i in "${picked[@]}"; do # the gateway first: no request reaches a worker that drains
    if is_gateway "$i"; then ctl stop "$group:${programs[$i]}" || rc=$?; fi
  done
  ctl stop "${targets[@]}" || rc=$?
  if [ "$all_picked" = 1 ]; then
    pid=$(sv_pid)
    ctl shutdown || rc=$?
    deadline=$((SECONDS + stop_timeout + 30))
    while alive "$pid"; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        warn "supervisord (pid $pid) did not exit"
        return 1
      fi
      sleep 0.1
    done
  fi
  return "$rc"
}

# sv_state/sv_desc per program from one supervisorctl status call; fails when supervisord cannot be reached.
declare -A sv_state=() sv_desc=()
sv_query() {
  local out line pname pstate pdesc rc=0
  sv_state=()
  sv_desc=()
  out=$(ctl status "$group:*" 2>&1) || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 3 ] || return 1
  while IFS= read -r line; do
    read -r pname pstate pdesc <<<"$line" || true
    [ -n "$pname" ] || continue
    sv_state[${pname#"$group":}]=$pstate
    sv_desc[${pname#"$group":}]=$pdesc
  done <<<"$out"
}

unknown_program="the running supervisord does not know it (compiled again since it started? run: $0 reload)"

# last_exit: how supervisord last saw a program end in its current (or latest) run, e.g. "exit status 13; not
# expected" ('' when never). Its log is appended across runs: only lines after the last start count.
last_exit=""
sv_last_exit() {
  local line=""
  last_exit=""
  [ -r "$runtime_dir/supervisord.log" ] || return 0
  line=$(awk -v program="exited: $1 (" '
    / supervisord started with pid / { last = "" }
    index($0, program) { last = substr($0, index($0, program) + length(program)) }
    END { print last }' "$runtime_dir/supervisord.log") || true
  last_exit=${line%)*}
}

# ---------------------------------------------------------------------------------------------------------
# fallback mode: each launch script in its own session, pid in pid_files[i] (the pid is also the group id)

fb_pid=""
# Whether instance $1 runs, per its pid file ("PID STARTTIME"): sets fb_pid ('' without a usable pid file).
# The pid is trusted only when that process started at the recorded time, leads its own process group and
# runs this instance's launch script or its SGLang server: a pid file kept from before a restart may name an
# unrelated process by now, or another instance's.
fb_running() {
  local start=""
  fb_pid=""
  read -r fb_pid start _ 2>/dev/null <"${pid_files[$1]}" || true
  case $fb_pid in
    "" | *[!0-9]* | 0 | 1)
      fb_pid="" # never signal -0 or -1: that would reach every process
      return 1
      ;;
  esac
  alive "$fb_pid" && [ -n "$start" ] && [ "$proc_start" = "$start" ] && [ "$proc_pgrp" = "$fb_pid" ] &&
    ours "$fb_pid" "$1"
}

# Record the pid of a server just started, with its start time (what fb_running checks).
record_pid() {
  if proc_stat "$2"; then
    printf '%s %s\n' "$2" "$proc_start" >"${pid_files[$1]}"
  fi
}

fb_start() {
  local i pid rc=0
  local -a started=() started_pids=()
  ensure_dirs
  [ -n "$recorded" ] || record_mode
  for i in "${picked[@]}"; do
    if fb_running "$i"; then
      report "${names[$i]}: already running (pid $fb_pid)"
      continue
    fi
    # Each in a session of its own (so its process group can be killed as one), with no descriptor of the
    # caller's beyond stdin (/dev/null) and the log.
    if command -v setsid >/dev/null 2>&1; then
      (close_fds && exec setsid "${launches[$i]}") </dev/null >>"${logs[$i]}" 2>&1 &
      pid=$!
    else
      set -m
      (close_fds && exec "${launches[$i]}") </dev/null >>"${logs[$i]}" 2>&1 &
      pid=$!
      set +m
    fi
    record_pid "$i" "$pid"
    report "${names[$i]}: started (pid $pid, log ${logs[$i]})"
    started+=("$i")
    started_pids+=("$pid")
  done
  [ "${started[*]}" ] || return 0
  # The preflight checks of a launch script take well under a second: report those that failed at once.
  sleep 0.5
  for i in "${!started[@]}"; do
    pid=${started_pids[$i]}
    alive "$pid" && continue
    local status=0
    wait "$pid" || status=$?
    TZ=UTC0 printf '%(%Y-%m-%dT%H:%M:%SZ)T %s: launch-%s.sh exited with status %s\n' -1 "$me" \
      "${names[${started[$i]}]}" "$status" >>"${logs[${started[$i]}]}"
    report "${names[${started[$i]}]}: failed at once (exit status $status)"
    log_tail "${started[$i]}" 20
    rc=1
  done
  return "$rc"
}

# The gateway first (no request reaches a worker that drains), then the workers.
fb_stop() {
  local i
  local -a rest=()
  for i in "${picked[@]}"; do
    if is_gateway "$i"; then stop_by_pid_files "$i"; else rest+=("$i"); fi
  done
  stop_by_pid_files "${rest[@]}"
}

# Instances in supervisord mode that run without it (supervisord was killed; its servers went on): replaced
# cleanly before supervisord starts again, since it cannot adopt them and they hold their ports.
replace_orphans() {
  local i
  local -a orphans=()
  for i in "${!names[@]}"; do
    if fb_running "$i"; then
      report "${names[$i]}: replacing the server that runs without supervisord (pid $fb_pid; supervisord was killed)"
      orphans+=("$i")
    fi
  done
  [ "${#orphans[@]}" = 0 ] || stop_by_pid_files "${orphans[@]}" || die 1 "cannot stop the servers left without supervisord"
}

# Stop the instances with these indices through their pid files: TERM to each server, then the whole group.
stop_by_pid_files() {
  local i pid deadline rc=0
  local -a pending=() groups=()
  for i in "$@"; do
    if fb_running "$i"; then
      report "${names[$i]}: stopping (pid $fb_pid)"
      kill -TERM "$fb_pid" 2>/dev/null || true # the server only: it drains, then ends its children
      pending+=("$fb_pid")
      groups+=("$fb_pid")
    elif [ -n "$fb_pid" ] && ! alive "$fb_pid" && group_alive "$fb_pid"; then
      groups+=("$fb_pid") # the server is gone, members of its group are not
    fi
  done
  deadline=$((SECONDS + stop_timeout))
  while [ "${pending[*]}" ] && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.1
    local -a left=()
    for pid in "${pending[@]}"; do
      if alive "$pid"; then left+=("$pid"); fi
    done
    pending=("${left[@]}")
  done
  for pid in "${groups[@]}"; do
    if group_alive "$pid"; then
      warn "process group $pid is still there; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  done
  deadline=$((SECONDS + 10))
  for pid in "${groups[@]}"; do
    while group_alive "$pid"; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        warn "process group $pid survived SIGKILL"
        rc=1
        break
      fi
      sleep 0.1
    done
  done
  for i in "$@"; do
    rm -f -- "${pid_files[$i]}"
  done
  return "$rc"
}

# ---------------------------------------------------------------------------------------------------------
# commands

cmd_start() {
  pick_autostart "$@"
  if [ "$count" = 0 ]; then
    report "no instance is enabled in $config; nothing to start"
    return 0
  fi
  if [ "${#picked[@]}" = 0 ]; then
    report "no instance has autostart in $config; start them by name (instances: ${names[*]})"
    return 0
  fi
  if [ "$master_enable" != true ]; then
    report "note: master.enable is false in $config (boot starts nothing); starting as asked"
  fi
  clear_failures
  local rc=0
  if [ -n "$supervisord" ]; then sv_start || rc=$?; else fb_start || rc=$?; fi
  write_applied "${picked[@]}"
  return "$rc"
}

cmd_stop() {
  local rc=0
  pick "$@"
  if [ -n "$supervisord" ]; then
    sv_stop || rc=$?
  fi
  # Also what a run without supervisord left (the mode may have changed since, e.g. after an install).
  fb_stop || rc=$?
  remove_secrets
  if [ "$all_picked" = 1 ] && [ "$rc" = 0 ]; then
    rm -f -- "$state_file" "$applied_file" # everything stopped: the next start chooses the mode again
  fi
  return "$rc"
}

# What a launch script's exit status means (lib/launch.sh lists them), for status lines: "12 = weight shards missing".
exit_meaning() {
  local what=""
  case $1 in
    2) what="usage" ;;
    10) what="SGLang environment not installed" ;;
    11) what="model missing" ;;
    12) what="weight shards missing" ;;
    13) what="port in use" ;;
    14) what="GPU missing" ;;
    15) what="a secret's variable unset" ;;
    16) what="a secret unusable" ;;
    17) what="dependency not ready" ;;
    18) what="runtime directory unusable" ;;
    19) what="the weights do not fit the GPUs' memory" ;;
    20) what="the dist-init address variable unset or not HOST:PORT" ;;
    21) what="smg (the gateway) not installed" ;;
  esac
  printf '%s' "${what:+$1 = $what}"
}

# A launch script that failed a check under supervisord leaves its reason here (lib/launch.sh): status shows
# it, and supervisord's retries end at once instead of printing the same error again.
failed_code="" failed_text=""
failed_reason() {
  local code _ppid _when reason=""
  failed_code="" failed_text=""
  [ -f "${pid_files[$1]%/*}/.${names[$1]}.failed" ] || return 1
  read -r code _ppid _when reason <"${pid_files[$1]%/*}/.${names[$1]}.failed" || return 1
  failed_code=$code
  failed_text="failed: $(exit_meaning "$code"): $reason"
}
clear_failures() {
  local i
  for i in "${picked[@]}"; do rm -f -- "${pid_files[$i]%/*}/.${names[$i]}.failed"; done
}

# How often supervisord restarted a program by itself (after an exit it did not ask for) since it was last
# started or stopped on purpose, in supervisord's current run.
sv_restarts() {
  [ -r "$runtime_dir/supervisord.log" ] || { printf 0; return 0; }
  awk -v program="$1" '
    / supervisord started with pid / || index($0, "stopped: " program " (") { n = 0; exited = 0 }
    index($0, "exited: " program " (") { exited = 1 }
    index($0, "spawned: '"'"'" program "'"'"' with pid") { if (exited) n++; exited = 0 }
    END { print n + 0 }' "$runtime_dir/supervisord.log"
}

cmd_status() {
  local i state desc health up=1 rc=0 format=text pid restarts exit_code first=1
  local -a args=()
  while [ "$#" -gt 0 ]; do
    case $1 in
      --format) [ "$#" -ge 2 ] || die 2 "--format needs text or json"; format=$2; shift 2 ;;
      --format=*) format=${1#--format=}; shift ;;
      -*) die 2 "status: unknown option '$1'" ;;
      *) args+=("$1"); shift ;;
    esac
  done
  case $format in text | json) ;; *) die 2 "--format wants text or json, not '$format'" ;; esac
  pick "${args[@]}"
  if [ -n "$supervisord" ]; then
    sv_query || up=0
  fi
  [ "$format" = text ] || printf '{"mode": "%s", "instances": [' "$([ -n "$supervisord" ] && echo supervisord || echo background)"
  for i in "${picked[@]}"; do
    pid="" restarts=0 exit_code="" last_exit=""
    if [ -n "$supervisord" ]; then
      if [ "$up" = 1 ]; then
        state=${sv_state[${programs[$i]}]:-UNKNOWN}
        desc=${sv_desc[${programs[$i]}]:-}
        [ -n "${sv_state[${programs[$i]}]:-}" ] || desc=$unknown_program
        [[ $desc =~ pid\ ([0-9]+) ]] && pid=${BASH_REMATCH[1]}
        restarts=$(sv_restarts "${programs[$i]}")
        [ "$restarts" = 0 ] || desc="$desc, restarts $restarts"
      elif fb_running "$i"; then
        state=UNSUPERVISED desc="pid $fb_pid runs without supervisord, which is not running (killed?); start replaces it"
        pid=$fb_pid
      else
        state=STOPPED desc="supervisord is not running"
      fi
    elif fb_running "$i"; then
      state=RUNNING desc="pid $fb_pid" pid=$fb_pid
    elif [ -n "$fb_pid" ]; then
      state=EXITED desc="no longer runs (pid file: $fb_pid)"
    else
      state=STOPPED desc="not started"
    fi
    health="not ready"
    case $state in
      RUNNING | STARTING | UNSUPERVISED) ! ready "$i" || health=ready ;;
    esac
    [ "$state" = RUNNING ] || rc=3
    case $state in
      FATAL | EXITED | BACKOFF | UNKNOWN | STOPPED)
        if failed_reason "$i"; then
          desc=$failed_text
          exit_code=$failed_code
        elif [ -n "$supervisord" ]; then
          sv_last_exit "${programs[$i]}"
          if [[ $last_exit =~ ^exit\ status\ ([0-9]+) ]]; then
            exit_code=${BASH_REMATCH[1]}
            last_exit+="$(m=$(exit_meaning "$exit_code"); printf '%s' "${m:+ ($m)}")"
          fi
          [ -z "$last_exit" ] || desc="$desc; last exit: $last_exit"
        fi
        [ "$state" = STOPPED ] && [ -z "$exit_code" ] || desc="$desc -- see: $0 logs ${names[$i]}"
        ;;
    esac
    if is_gateway "$i" && [ "$health" = ready ] && gateway_workers "$i"; then
      desc="$desc; workers healthy: ${seen:-none} ($seen_n of $seen_of)"
    fi
    if [ "$format" = text ]; then
      printf '%-16s %-8s %-9s http://%s:%s  %s\n' "${names[$i]}" "$state" "$health" "${hosts[$i]}" "${ports[$i]}" "$desc"
    else
      [ "$first" = 1 ] || printf ', '
      first=0
      printf '{"name": %s, "state": "%s", "ready": %s, "pid": %s, "url": %s, "restarts": %s, "last_exit": %s, "detail": %s}' \
        "$(json_string "${names[$i]}")" "$state" "$([ "$health" = ready ] && echo true || echo false)" \
        "${pid:-null}" "$(json_string "http://${hosts[$i]}:${ports[$i]}")" "$restarts" "${exit_code:-null}" \
        "$(json_string "$desc")"
    fi
  done
  [ "$format" = text ] || printf ']}\n'
  return "$rc"
}

cmd_wait() {
  local timeout=$ready_timeout t0 deadline i state why rc=0 up dep
  local -a args=() pending=() left=()
  local -A exited_since=() failed=()
  while [ "$#" -gt 0 ]; do
    case $1 in
      --timeout)
        [ "$#" -ge 2 ] || die 2 "--timeout needs a number of seconds"
        timeout=$2
        shift 2
        ;;
      --timeout=*)
        timeout=${1#--timeout=}
        shift
        ;;
      -*) die 2 "wait: unknown option '$1'" ;;
      *)
        args+=("$1")
        shift
        ;;
    esac
  done
  [[ $timeout =~ ^[0-9]{1,9}$ ]] || die 2 "--timeout wants whole seconds (at most 9 digits), not '$timeout'"
  pick_autostart "${args[@]}"
  now=$(now_us)
  t0=$now
  deadline=$((t0 + 10#$timeout * 1000000))
  pending=("${picked[@]}")
  while [ "${pending[*]}" ]; do
    left=()
    for i in "${pending[@]}"; do
      if ready "$i"; then
        now=$(now_us)
        seen=""
        ! is_gateway "$i" || gateway_workers "$i" || :
        printf '%s: ready in %d.%d s%s\n' "${names[$i]}" $(((now - t0) / 1000000)) $(((now - t0) / 100000 % 10)) \
          "${seen:+ (workers healthy: $seen)}"
      else
        left+=("$i")
      fi
    done
    pending=()
    up=1
    if [ "${left[*]}" ] && [ -n "$supervisord" ]; then
      sv_query || up=0
    fi
    for i in "${left[@]}"; do
      why=""
      if [ -n "$supervisord" ]; then
        if [ "$up" = 0 ]; then
          why="supervisord is not running"
        else
          state=${sv_state[${programs[$i]}]:-UNKNOWN}
          case $state in
            FATAL | STOPPED) why="$state: ${sv_desc[${programs[$i]}]:-}" ;;
            UNKNOWN) why="UNKNOWN: ${sv_desc[${programs[$i]}]:-$unknown_program}" ;;
            EXITED)
              # After a crash supervisord shows EXITED for up to a second before it restarts the program:
              # only an EXITED that lasts is final (an exit status it counts as expected).
              now=$(now_us)
              : "${exited_since[$i]:=$now}"
              if [ $((now - exited_since[$i])) -ge 3000000 ]; then
                why="EXITED: ${sv_desc[${programs[$i]}]:-}"
              fi
              ;;
            *) unset "exited_since[$i]" ;;
          esac
        fi
      elif ! fb_running "$i"; then
        why="process ${fb_pid:-(never started)} is gone"
      fi
      if [ -z "$why" ]; then
        # its launch script waits for an instance that failed: it cannot get ready
        for dep in ${deps[$i]}; do
          [ -z "${failed[$dep]:-}" ] || why="it waits for $dep, which failed"
        done
      fi
      if [ -n "$why" ]; then
        if [ -n "$supervisord" ]; then
          sv_last_exit "${programs[$i]}"
          [ -z "$last_exit" ] || why="$why; last exit: $last_exit"
        fi
        printf '%s: failed (%s)\n' "${names[$i]}" "$why"
        failed[${names[$i]}]=1
        log_tail "$i" 20
        rc=1
      else
        pending+=("$i")
      fi
    done
    [ "${pending[*]}" ] || break
    now=$(now_us)
    if [ "$now" -ge "$deadline" ]; then
      for i in "${pending[@]}"; do
        printf '%s: timed out after %s s\n' "${names[$i]}" "$timeout"
      done
      rc=1
      break
    fi
    sleep 0.5
  done
  return "$rc"
}

cmd_logs() {
  local follow=()
  [ "$#" -ge 1 ] || die 2 "logs needs an instance name"
  case $1 in -*) die 2 "logs needs an instance name first" ;; esac
  pick "$1"
  shift
  case ${1-} in
    -f | --follow) follow=(-f) ;;
    "") ;;
    *) die 2 "logs: unknown argument '$1'" ;;
  esac
  [ "$#" -le 1 ] || die 2 "logs takes one instance name and -f"
  local log=${logs[${picked[0]}]} line
  [ -f "$log" ] || die 1 "no log yet at $log"
  while IFS= read -r line || [ -n "$line" ]; do
    redact "$line"
    printf '%s\n' "$redacted"
  done < <(tail -n 200 "${follow[@]}" -- "$log")
}

# Apply a recompiled DIR to what runs: instances that are new start (those with autostart), removed ones stop,
# changed ones (another revision than the one they were started at) restart when they run, and every other
# instance is left alone, its server untouched.
cmd_reload() {
  local i name rev program port pid_file launch secret rc=0 running
  local -a added=() changed=() kept=() gone=() down=() up=()
  [ "$#" = 0 ] || die 2 "reload takes no arguments (it applies the whole compile)"
  if [ -z "$recorded" ]; then
    report "nothing runs from $config (no record in $runtime_dir); start it with: $0 start"
    return 0
  fi
  ensure_dirs
  read_applied
  if [ -n "$supervisord" ]; then
    sv_up || die 1 "supervisord is not running (killed?): run $0 start, which replaces what it left"
    sv_query || die 1 "supervisord stopped answering; see $runtime_dir/supervisord.log"
  fi
  for i in "${!names[@]}"; do
    if [ -z "${applied[${names[$i]}]+set}" ]; then
      added+=("$i")
      continue
    fi
    rev=${applied[${names[$i]}]%%$'\t'*}
    if [ "$rev" = "${revisions[$i]}" ]; then kept+=("$i"); else changed+=("$i"); fi
  done
  # A removed instance is known by its record only: it joins the arrays past the compiled ones, so that
  # stopping it goes the usual way (its pid file, its launch script's path or its server's port).
  for name in "${!applied[@]}"; do
    for i in "${!names[@]}"; do
      [ "${names[$i]}" != "$name" ] || continue 2
    done
    IFS=$'\t' read -r rev program port pid_file launch secret <<<"${applied[$name]}"
    names+=("$name") programs+=("$program") ports+=("$port") pid_files+=("$pid_file") launches+=("$launch")
    secrets+=("$secret")
    gone+=("$((${#names[@]} - 1))")
  done
  for i in "${kept[@]}"; do
    report "${names[$i]}: unchanged, left as it is"
  done
  for i in "${gone[@]}"; do
    report "${names[$i]}: removed from the compile: stopping"
    down+=("$i")
  done
  for i in "${changed[@]}"; do
    running=0
    if [ -n "$supervisord" ]; then
      case ${sv_state[${programs[$i]}]:-} in RUNNING | STARTING | BACKOFF) running=1 ;; esac
    elif fb_running "$i"; then
      running=1
    fi
    if [ "$running" = 1 ]; then
      report "${names[$i]}: changed: restarting"
      down+=("$i")
      up+=("$i")
    else
      report "${names[$i]}: changed; not running, so not started"
    fi
  done
  for i in "${added[@]}"; do
    if [ "${autostarts[$i]}" = yes ]; then
      report "${names[$i]}: new: starting"
      up+=("$i")
    else
      report "${names[$i]}: new, autostart = false: start it by name"
    fi
  done
  if [ -n "$supervisord" ]; then
    sv_reload || rc=1
  else
    if [ "${#down[@]}" -gt 0 ]; then stop_by_pid_files "${down[@]}" || rc=1; fi
    names=("${names[@]:0:count}")
    picked=()
    for i in "${!names[@]}"; do
      [[ " ${up[*]} " == *" $i "* ]] && picked+=("$i")
    done
    [ "${#picked[@]}" = 0 ] || fb_start || rc=1
  fi
  for i in "${gone[@]}"; do
    [ -z "${secrets[$i]:-}" ] || rm -f -- "${secrets[$i]}"
  done
  names=("${names[@]:0:count}")
  write_applied
  [ "$rc" = 0 ] || warn "reload did not finish cleanly; see: $0 status"
  return "$rc"
}

# reload under supervisord: stop what goes or changes, let supervisord take the conf's programs of the group
# (lib/sglangc_supervisor.py; a program whose section changed must be stopped first, so it restarts too),
# then start what is new or changed.
sv_reload() {
  local i kind program out python rc=0 tries
  local -a stop_targets=() start_targets=()
  for i in "${down[@]}"; do stop_targets+=("$group:${programs[$i]}"); done
  [ "${#stop_targets[@]}" = 0 ] || ctl stop "${stop_targets[@]}" >/dev/null || true
  # The Python that runs supervisord (the first word of its command line: the script's interpreter) has the
  # supervisor package: it talks to it through the conf's socket.
  proc_cmdline "$(sv_pid)" && [ "${#proc_argv[@]}" -gt 0 ] && [[ ${proc_argv[0]} == /* ]] ||
    die 1 "cannot find the Python that runs supervisord (pid $(sv_pid))"
  python=${proc_argv[0]}
  for tries in 1 2; do
    rc=0
    out=$("$python" -E -s "$lib/sglangc_supervisor.py" "$conf" "$group") || rc=$?
    [ "$rc" = 3 ] && [ "$tries" = 1 ] || break
    # programs whose section changed while their launch script did not: stop them, restart them after
    stop_targets=()
    while read -r kind program; do
      [ "$kind" = busy ] || continue
      stop_targets+=("$group:$program")
      for i in "${!programs[@]}"; do
        if [ "${programs[$i]}" = "$program" ] && [ "$i" -lt "$count" ]; then
          report "${names[$i]}: its supervisord settings changed: restarting"
          up+=("$i")
        fi
      done
    done <<<"$out"
    ctl stop "${stop_targets[@]}" >/dev/null || true
  done
  [ "$rc" = 0 ] || die 1 "supervisord did not take the new conf${out:+: $out}"
  picked=()
  for i in "${!names[@]}"; do
    if [ "$i" -lt "$count" ] && [[ " ${up[*]} " == *" $i "* ]]; then
      picked+=("$i")
      start_targets+=("$group:${programs[$i]}")
    fi
  done
  [ "${#picked[@]}" -gt 0 ] || return 0
  rc=0
  ctl start "${start_targets[@]}" >/dev/null || rc=$?
  sv_settle || rc=1
  return "$rc"
}

command=${1-}
[ "$#" = 0 ] || shift
case $command in
  -h | --help | help)
    usage
    exit 0
    ;;
  start | stop | restart | status | wait | logs | reload) ;;
  "")
    usage >&2
    exit 2
    ;;
  *) die 2 "unknown command '$command' (commands: start, stop, restart, status, wait, logs, reload; see --help)" ;;
esac

verify_runtime_dir
choose_mode
case $command in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  restart)
    cmd_stop "$@"
    cmd_start "$@"
    ;;
  status) cmd_status "$@" ;;
  wait) cmd_wait "$@" ;;
  logs) cmd_logs "$@" ;;
  reload) cmd_reload "$@" ;;
esac
