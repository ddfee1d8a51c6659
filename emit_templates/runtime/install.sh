# shellcheck shell=bash
# sglangc runtime: the body of install-sglang-offline.sh.
#
# Installs the offline SGLang bundle (a pixi-pack archive or a wheelhouse tar) with no network into
#   $PREFIX = $AUTO_INFER_SGLANG_PIXI_PROJECT_DIR/.pixi/envs/$AUTO_INFER_SGLANG_PIXI_ENVIRONMENT
# a symlink to a versioned environment beside it (<env>.<n>), switched atomically. Every environment is built
# in place at its final path (venvs and conda prefixes hold absolute paths and are never moved). The previous
# environment is kept (servers may still run from it), older ones are removed.
#
# Usage: install-sglang-offline.sh [--force] [--verify] [--no-wait] [-h]
#   (none)     install, unless $PREFIX already comes from this bundle (same path, size, nanosecond mtime):
#              then say "already installed" without reading the bundle
#   --force    install again even so
#   --verify   re-hash the bundle, compare with what $PREFIX was installed from, import-check $PREFIX
#   --no-wait  when another install holds the lock, report it and exit 16 instead of waiting
#
# Steps (one progress line each, with its duration): preflight (bundle, free space >= 2.5 x bundle, tools, and
# what the bundle's bundle.json says it needs of the container: glibc, the driver's CUDA, the wheelhouse's Python),
# extract (SHA-256 computed in the same read as the extraction, into a staging directory beside $PREFIX),
# install (pixi-unpack, else a re-lock with pixi; or python -m venv + pip for a wheelhouse), verify, activate
# (marker .installed-from.json, switch $PREFIX, prune). All of it runs under flock on a lock file in the
# project directory. On any failure $PREFIX and the environments are untouched and nothing is left behind.
#
# Environment (each overrides a default the generated install-sglang-offline.sh sets):
#   AUTO_INFER_SGLANG_BUNDLE_PATH        default_bundle
#   AUTO_INFER_SGLANG_BUNDLE_SHA256      default_sha256 (may be empty); without a pin, <bundle>.sha256 when present
#   AUTO_INFER_SGLANG_PIXI_PROJECT_DIR   default_project_dir
#   AUTO_INFER_SGLANG_PIXI_ENVIRONMENT   default_environment
#   AUTO_INFER_SGLANG_PIXI_TEMPLATE_DIR  default_template_dir (pixi.toml for the re-lock route)
#   AUTO_INFER_SGLANG_PYTHON             python3 (makes the venv of a wheelhouse; only that route needs it)
#   AUTO_INFER_SGLANG_VERIFY             0: skip the import check (with a warning)
#   AUTO_INFER_SGLANG_VERIFY_CUDA        0: import check without the CUDA part (and a driver older than the
#                                        bundle's CUDA is only a warning in preflight)
# The generated script also sets `me` and `sglangc_version` (recorded in the environment's marker).
#
# Exit codes: 0 installed (or already installed, or verified), 1 unexpected error, 2 usage, 10 no bundle,
# 11 checksum mismatch, 12 not enough space, 13 extraction failed (also: not a bundle), 14 install failed,
# 15 verify failed, 16 lock busy (--no-wait), 17 target not writable, 18 tool missing, 19 the bundle does not fit
# this container (its glibc, its driver's CUDA version, or the Python of a wheelhouse; see bundle.json).
shopt -s nullglob
# The environment is read and run by every user of the container but written by this script alone, whatever
# umask the caller (an entrypoint) had: files 0644 and directories 0755, never writable by others.
umask 022
# Its lines end up in the boot's log (through the entry hook): each begins with the UTC time.
stamped=1

bundle="${AUTO_INFER_SGLANG_BUNDLE_PATH:-$default_bundle}"
pin_env="${AUTO_INFER_SGLANG_BUNDLE_SHA256:-$default_sha256}"
resolve_prefix
template_dir="${AUTO_INFER_SGLANG_PIXI_TEMPLATE_DIR:-$default_template_dir}"
python_bin="${AUTO_INFER_SGLANG_PYTHON:-python3}"
verify="${AUTO_INFER_SGLANG_VERIFY:-1}"
verify_cuda="${AUTO_INFER_SGLANG_VERIFY_CUDA:-1}"

usage() {
  printf 'usage: %s [--force] [--verify] [--no-wait] [-h]\n' "$0"
  printf '%s\n' \
    "Install the offline SGLang bundle $bundle into $project_dir/.pixi/envs/$environment." \
    "  --force    install even when that environment already comes from this bundle" \
    "  --verify   re-hash the bundle, compare it with the installed environment's marker, import-check it" \
    "  --no-wait  exit 16 instead of waiting when another install holds the lock" \
    "Exit codes: 0 ok, 1 unexpected, 2 usage, 10 no bundle, 11 checksum mismatch, 12 not enough space," \
    "13 extraction failed, 14 install failed, 15 verify failed, 16 lock busy, 17 target not writable," \
    "18 tool missing, 19 the bundle does not fit this container (glibc, driver CUDA, Python)."
}
force=0
verify_only=0
wait_lock=1
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    --verify) verify_only=1 ;;
    --no-wait) wait_lock=0 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die 2 "unknown argument '$arg' (usage: $0 [--force] [--verify] [--no-wait] [-h])" ;;
  esac
done
[ "$force$verify_only" != 11 ] || die 2 "--force and --verify exclude each other"
[[ $environment =~ ^[A-Za-z0-9_-]+$ ]] || die 2 "environment name '$environment' is not a pixi environment name ([A-Za-z0-9_-]+)"
[ -n "$project_dir" ] || die 2 "AUTO_INFER_SGLANG_PIXI_PROJECT_DIR is empty"
[[ $project_dir == /* ]] || project_dir="$PWD/$project_dir"
[[ $template_dir == /* ]] || template_dir="$PWD/$template_dir"

envs_dir="$project_dir/.pixi/envs"
PREFIX="$envs_dir/$environment"
lock_file="$project_dir/.sglang-install.lock"
marker_name=.installed-from.json

t_start=$(now_us)
step_t0=$t_start
begin() { step_t0=$(now_us); }
# One progress line: "<step>: <what happened> [<seconds>s]".
done_step() {
  local us
  us=$(($(now_us) - step_t0))
  printf '%s: %s: %s [%d.%02ds]\n' "$me" "$1" "$2" $((us / 1000000)) $((us % 1000000 / 10000))
}
human() { # KiB -> text
  local k=$1
  if [ "$k" -ge 1048576 ]; then
    printf '%d.%d GiB' $((k / 1048576)) $((k % 1048576 * 10 / 1048576))
  elif [ "$k" -ge 1024 ]; then
    printf '%d.%d MiB' $((k / 1024)) $((k % 1024 * 10 / 1024))
  else
    printf '%d KiB' "$k"
  fi
}

# The environment directory a versioned directory holds: itself, or its pixi project's environment.
prefix_of() {
  if [ -d "$1/.pixi/envs/$environment" ]; then
    printf '%s' "$1/.pixi/envs/$environment"
  else
    printf '%s' "$1"
  fi
}
complete_dir() { [ -f "$(prefix_of "$1")/$marker_name" ]; }
# Name of the versioned directory $PREFIX points into (empty when $PREFIX is no symlink).
current_name() {
  local target
  [ -L "$PREFIX" ] || return 0
  target=$(readlink -- "$PREFIX") || return 0
  target=${target#"$envs_dir"/}
  printf '%s' "${target%%/*}"
}
versioned_dirs() { # every <env>.<n> directory
  local d name
  for d in "$envs_dir/$environment".*; do
    name=${d##*/}
    [[ ${name#"$environment".} =~ ^[0-9]+$ ]] || continue
    if [ ! -d "$d" ] || [ -L "$d" ]; then continue; fi
    printf '%s\n' "$d"
  done
}

# The pinned SHA-256 (lower case) and where it came from; empty when there is none.
pin=""
pin_source=""
resolve_pin() {
  local text
  if [ -n "$pin_env" ]; then
    pin=$pin_env
    pin_source=AUTO_INFER_SGLANG_BUNDLE_SHA256
  elif [ -f "$bundle.sha256" ]; then
    text=$(head -c 4096 -- "$bundle.sha256") || die 11 "cannot read $bundle.sha256"
    pin_source="$bundle.sha256"
    if [[ $text =~ (^|[^0-9A-Fa-f])([0-9A-Fa-f]{64})([^0-9A-Fa-f]|$) ]]; then
      pin=${BASH_REMATCH[2]}
    else
      die 11 "$bundle.sha256 holds no SHA-256 (64 hex digits)"
    fi
  fi
  pin=${pin,,}
  if [ -n "$pin" ] && ! [[ $pin =~ ^[0-9a-f]{64}$ ]]; then
    die 11 "the checksum pin from $pin_source is not a SHA-256 (64 hex digits): $pin"
  fi
  return 0
}

hasher=()
pick_hasher() { # openssl uses the CPU's SHA instructions; coreutils' sha256sum often does not
  if command -v openssl >/dev/null 2>&1 && openssl dgst -sha256 -r </dev/null >/dev/null 2>&1; then
    hasher=(openssl dgst -sha256 -r)
  elif command -v sha256sum >/dev/null 2>&1; then
    hasher=(sha256sum)
  else
    die 18 "neither sha256sum nor openssl is installed: cannot check the bundle"
  fi
}

# Import check of an environment, activated; prints one line. $2: 1 to require CUDA.
import_check() {
  activate_env "$1" # as the servers will run it (always called in a subshell: nothing leaks)
  "$1/bin/python" -I -c '
import sys
import sglang, torch, supervisor, yaml
line = "sglang %s, torch %s" % (getattr(sglang, "__version__", "?"), getattr(torch, "__version__", "?"))
if sys.argv[1] == "1":
    ok = bool(torch.cuda.is_available())
    cuda = getattr(getattr(torch, "version", None), "cuda", None)
    if not ok:
        print(line + ", CUDA NOT usable (torch CUDA %s)" % cuda)
        sys.exit(3)
    print(line + ", CUDA %s usable, %d GPU(s)" % (cuda, torch.cuda.device_count()))
else:
    print(line + ", CUDA not checked")
' "$2"
}

run_verify() { # prefix -> one progress line, or exit 15
  local out cuda=1
  begin
  if off "$verify"; then
    warn "verify skipped (AUTO_INFER_SGLANG_VERIFY=$verify): $1 was not import-checked"
    return 0
  fi
  off "$verify_cuda" && cuda=0
  if ! out=$(import_check "$1" "$cuda" 2>&1); then
    printf '%s\n' "$out" | tail -n 5 | sed 's/^/  | /' >&2
    case $out in
      *"CUDA NOT usable"*) die 15 "verify failed: $1: CUDA is not usable (AUTO_INFER_SGLANG_VERIFY_CUDA=0 skips this check)" ;;
    esac
    die 15 "verify failed: $1/bin/python cannot import sglang, torch, supervisor and yaml"
  fi
  done_step verify "${out##*$'\n'}"
}

# What the bundle needs of this container, from its bundle.json (written by `sglangc bundle`, format 1: kind,
# environment, python "3.12", glibc "2.34" or null, cuda 12 or null, sglangc_version), compared before anything
# is extracted: glibc (getconf, else ldd), the driver's CUDA version (nvidia-smi's header, when nvidia-smi is
# there) and, for a wheelhouse, the Python that makes the venv. Plain bash: no Python is needed to read it.
meta_text=""
meta_value() { # a top-level field: a string's contents or a number; fails for null and when absent
  local re="\"$1\"[[:space:]]*:[[:space:]]*(\"([^\"]*)\"|[0-9]+)"
  [[ $meta_text =~ $re ]] || return 1
  if [ -n "${BASH_REMATCH[2]}" ]; then printf '%s' "${BASH_REMATCH[2]}"; else printf '%s' "${BASH_REMATCH[1]}"; fi
}
older() { # is MAJOR.MINOR $1 older than $2?
  local a_major=${1%%.*} a_minor=${1#*.} b_major=${2%%.*} b_minor=${2#*.}
  [ "$a_major" -lt "$b_major" ] || { [ "$a_major" = "$b_major" ] && [ "$a_minor" -lt "$b_minor" ]; }
}
container_glibc() { # "2.35", or nothing when neither getconf nor ldd tells
  local out
  out=$(getconf GNU_LIBC_VERSION 2>/dev/null) || out=""
  if [[ $out =~ ^glibc[[:space:]]+([0-9]+\.[0-9]+) ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
    return 0
  fi
  out=$(ldd --version 2>/dev/null) || out=""
  out=${out%%$'\n'*}
  if [[ $out =~ ^ldd[[:space:]].*[[:space:]]([0-9]+\.[0-9]+)$ ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
  fi
  return 0
}
target_note=""
unchecked=0 # 1: no bundle.json, said once installed
check_target() {
  local name="" need have out major minor notes=()
  if [[ $listing == *$'\n'bundle.json$'\n'* ]]; then
    name=bundle.json
  elif [[ $listing == *$'\n'./bundle.json$'\n'* ]]; then
    name=./bundle.json
  else
    target_note="target not checked (no bundle.json)"
    unchecked=1
    return 0
  fi
  meta_text=$(tar -xOf "$bundle" "$name" 2>/dev/null) || die 13 "extraction failed: cannot read $name from $bundle"
  [[ $(meta_value format) == 1 ]] || warn "$bundle: bundle.json is not of format 1: reading what it can"
  if need=$(meta_value glibc) && [[ $need =~ ^[0-9]+\.[0-9]+$ ]]; then
    have=$(container_glibc)
    if [ -z "$have" ]; then
      warn "cannot tell this container's glibc (no getconf GNU_LIBC_VERSION, no ldd): the bundle needs $need"
    elif older "$have" "$need"; then
      die 19 "the bundle needs glibc $need (its newest wheel tag is manylinux_${need/./_}), this container has glibc $have: use a newer base image (Ubuntu 22.04 has 2.35), or build the bundle for this one with sglangc bundle --glibc $have"
    else
      notes+=("glibc $have")
    fi
  fi
  if need=$(meta_value cuda) && [[ $need =~ ^[0-9]+$ ]]; then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
      notes+=("CUDA $need wheels (no nvidia-smi: driver not checked)")
    elif ! out=$(nvidia-smi 2>/dev/null) || ! [[ $out =~ CUDA\ Version:\ *([0-9]+)\.([0-9]+) ]]; then
      warn "nvidia-smi does not show the driver's CUDA version: not checked against the bundle's CUDA $need wheels"
    else
      major=${BASH_REMATCH[1]}
      minor=${BASH_REMATCH[2]}
      if [ "$major" -ge "$need" ]; then
        notes+=("driver CUDA $major.$minor for CUDA $need wheels")
      elif off "$verify_cuda"; then
        warn "the bundle's wheels are CUDA $need builds, this container's driver supports CUDA $major.$minor (nvidia-smi): CUDA will not be usable; installing anyway (AUTO_INFER_SGLANG_VERIFY_CUDA=$verify_cuda)"
        notes+=("driver CUDA $major.$minor, too old for the CUDA $need wheels")
      else
        die 19 "the bundle's wheels are CUDA $need builds, this container's driver supports CUDA $major.$minor (nvidia-smi): update the host's NVIDIA driver (CUDA 13 needs >= 580), or install a bundle of an environment built for CUDA $major (sglangc bundle --environment default: CUDA 12)"
      fi
    fi
  fi
  if [ "$kind" = wheelhouse ] && need=$(meta_value python) && [[ $need =~ ^[0-9]+\.[0-9]+$ ]]; then
    out=$("$python_bin" -V 2>&1) || out=""
    if ! [[ $out =~ Python\ ([0-9]+\.[0-9]+) ]]; then
      warn "cannot tell the version of $python_bin ('$python_bin -V' printed '${out%%$'\n'*}'): the bundle's wheels are for Python $need"
    elif [ "${BASH_REMATCH[1]}" != "$need" ]; then
      have=${BASH_REMATCH[1]}
      die 19 "the bundle's wheels are for Python $need, $python_bin is Python $have: point AUTO_INFER_SGLANG_PYTHON at a python$need, or build the bundle for this one (python = \"$have.*\" in the Pixi template)"
    else
      notes+=("Python $need")
    fi
  fi
  target_note="fits this container"
  if [ "${#notes[@]}" != 0 ]; then
    printf -v out '%s, ' "${notes[@]}"
    target_note+=" (${out%, })"
  fi
}

# ---------------------------------------------------------------------------------------------------------
# The bundle, then the lock.
[ -n "$bundle" ] || die 10 "no bundle path: set AUTO_INFER_SGLANG_BUNDLE_PATH"
[ -e "$bundle" ] || die 10 "bundle $bundle does not exist (is its volume mounted?)"
[ -f "$bundle" ] || die 10 "bundle $bundle is not a regular file"
[ -r "$bundle" ] || die 10 "bundle $bundle is not readable"
command -v flock >/dev/null 2>&1 || die 18 "flock is not installed (util-linux)"

if ! mkdir -p -- "$envs_dir" 2>/dev/null; then
  die 17 "cannot create $envs_dir (read-only file system, or a path component is not a directory?)"
fi
# Read-write, so the first run can create it; an existing one read-only also takes a lock (read-only mount).
if ! { exec 9<>"$lock_file"; } 2>/dev/null && ! { exec 9<"$lock_file"; } 2>/dev/null; then
  die 17 "cannot open the lock file $lock_file (is $project_dir read-only?)"
fi
if ! flock -n 9; then
  [ "$wait_lock" = 1 ] || die 16 "another install is running (lock $lock_file held); not waiting (--no-wait)"
  say "waiting for another install to finish (lock $lock_file)"
  flock 9
fi

# Leftovers of an install that was killed: its staging directory, temporary symlink, partial environment.
current=$(current_name)
for d in "$envs_dir/.$environment.staging."* "$envs_dir/.$environment.link."*; do
  say "removing leftover $d"
  rm -rf -- "$d" || warn "cannot remove $d"
done
while IFS= read -r d; do
  [ "${d##*/}" != "$current" ] || continue
  complete_dir "$d" && continue
  say "removing partial environment $d (left by an interrupted install)"
  rm -rf -- "$d" || warn "cannot remove $d"
done < <(versioned_dirs)
rm -f -- "$envs_dir/activate.sh" 2>/dev/null || true # written by an interrupted pixi-unpack

stat_out=$(stat -L -c '%s %.9Y' -- "$bundle") || die 10 "cannot stat $bundle"
bundle_size=${stat_out%% *}
bundle_mtime=${stat_out#* }
if ! [[ $bundle_mtime =~ ^[0-9]+\.[0-9]{9}$ ]]; then # a stat without %.9Y (old coreutils)
  bundle_mtime=$(date -r "$bundle" +%s.%N) || die 10 "cannot stat $bundle"
fi
marker="$PREFIX/$marker_name"
marker_text=""
if [ -f "$marker" ]; then
  marker_text=$'\n'$(<"$marker")$'\n' || marker_text=""
fi
marker_field() { # the raw value of a top-level field of the marker
  local re=$'\n'"  \"$1\": ([^"$'\n'"]*[^,"$'\n'"]),?"$'\n'
  [[ $marker_text =~ $re ]] && printf '%s' "${BASH_REMATCH[1]}"
}
resolve_pin

# Same bundle as the current environment's: nothing to do (and nothing to read).
if [ "$force" = 0 ] && [ "$verify_only" = 0 ] && [ -n "$marker_text" ] && [ -x "$PREFIX/bin/python" ] &&
  [ "$(marker_field bundle_path)" = "$(json_string "$bundle")" ] &&
  [ "$(marker_field bundle_size)" = "$bundle_size" ] &&
  [ "$(marker_field bundle_mtime)" = "\"$bundle_mtime\"" ] &&
  { [ -z "$pin" ] || [ "$(marker_field sha256)" = "\"$pin\"" ]; }; then
  say "already installed: $PREFIX${current:+ ($current)} comes from $bundle (same path, size and mtime); --force reinstalls"
  exit 0
fi

# --verify: re-hash the bundle and compare with the marker, then the import check.
if [ "$verify_only" = 1 ]; then
  [ -n "$marker_text" ] || die 15 "nothing to verify: $PREFIX has no $marker_name (not installed by this script)"
  pick_hasher
  begin
  hash_out=$("${hasher[@]}" <"$bundle") || die 10 "cannot read $bundle"
  actual=${hash_out%% *}
  if [ -n "$pin" ] && [ "$actual" != "$pin" ]; then
    die 11 "checksum mismatch: $bundle has sha256 $actual, $pin_source says $pin"
  fi
  recorded=$(marker_field sha256)
  if [ "$recorded" != "\"$actual\"" ]; then
    die 15 "verify failed: $bundle has sha256 $actual, but $PREFIX was installed from sha256 ${recorded//\"/} ($(marker_field bundle_path))"
  fi
  done_step checksum "sha256 $actual matches $PREFIX/$marker_name"
  run_verify "$PREFIX"
  say "verified: $PREFIX comes from $bundle"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------------
staging=""
new_dir=""
switched=0
hash_pid=""
tmp_link=""
on_exit() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ] && [ "$died" = 0 ]; then
    local what="nothing was changed"
    [ "$switched" = 0 ] || what="$PREFIX was already switched to $new_dir"
    case $rc in
      129 | 130 | 143) printf '%s: error: interrupted by signal %s; %s\n' "$me" $((rc - 128)) "$what" >&2 ;;
      *) printf '%s: error: unexpected failure (exit status %s); %s\n' "$me" "$rc" "$what" >&2 ;;
    esac
  fi
  [ -z "$hash_pid" ] || kill "$hash_pid" 2>/dev/null
  if [ -n "$new_dir" ] && [ "$switched" = 0 ]; then
    rm -rf -- "$new_dir"
    rm -f -- "$envs_dir/activate.sh"
  fi
  [ -z "$tmp_link" ] || rm -f -- "$tmp_link"
  [ -z "$staging" ] || rm -rf -- "$staging"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Preflight: tools, bundle kind (from the tar's member list: headers only), free space, a writable target.
begin
for tool in tar stat df mkfifo tee tail tr wc awk; do
  command -v "$tool" >/dev/null 2>&1 || die 18 "$tool is not installed"
done
pick_hasher
listing=$(tar -tf "$bundle" 2>/dev/null) || die 13 "extraction failed: $bundle is not a readable tar archive"
# Every tar writer ends the archive with zero blocks; tar itself accepts a file cut at a member boundary.
tail_bytes=$(tail -c 1024 -- "$bundle" | tr -d '\0' | wc -c)
[ "$tail_bytes" = 0 ] || die 13 "extraction failed: $bundle lacks tar's end-of-archive blocks (truncated copy?)"
listing=$'\n'$listing$'\n'
member() { # a member at the archive's root, with or without "./"
  [[ $listing == *$'\n'"$1"[/$'\n']* || $listing == *$'\n'"./$1"[/$'\n']* ]]
}
if member pixi-pack.json && member environment.yml && member channel; then
  kind=pixi-pack
elif member requirements.txt && member wheels; then
  kind=wheelhouse
else
  die 13 "extraction failed: $bundle is neither a pixi-pack archive (pixi-pack.json, environment.yml, channel/) nor a wheelhouse (requirements.txt, wheels/)"
fi
case $kind in
  pixi-pack)
    if command -v pixi-unpack >/dev/null 2>&1; then
      route=pixi-unpack
    elif command -v pixi >/dev/null 2>&1; then
      route=pixi-relock
      [ -f "$template_dir/pixi.toml" ] || die 18 "pixi-unpack is not installed and the re-lock route needs $template_dir/pixi.toml (AUTO_INFER_SGLANG_PIXI_TEMPLATE_DIR)"
    else
      die 18 "a pixi-pack bundle needs pixi-unpack (or pixi for the re-lock route) on PATH; get the static binary pixi-unpack-x86_64-unknown-linux-musl from https://github.com/Quantco/pixi-pack/releases"
    fi
    ;;
  wheelhouse)
    route=pip
    command -v "$python_bin" >/dev/null 2>&1 || die 18 "a wheelhouse bundle needs a Python to make the venv: $python_bin not found (AUTO_INFER_SGLANG_PYTHON)"
    "$python_bin" -c 'import venv, ensurepip' >/dev/null 2>&1 || die 18 "$python_bin cannot make a venv with pip (modules venv/ensurepip missing; e.g. apt-get install python3-venv)"
    ;;
esac
check_target
bundle_kib=$(((bundle_size + 1023) / 1024))
need_kib=$((bundle_kib * 5 / 2))
df_out=$(df -Pk -- "$envs_dir" 2>/dev/null) || die 17 "df cannot read $envs_dir"
free_kib=$(printf '%s\n' "$df_out" | awk 'NR == 2 { print $4 }')
[[ $free_kib =~ ^[0-9]+$ ]] || die 1 "cannot read the free space of $envs_dir from df"
if [ "$free_kib" -lt "$need_kib" ]; then
  die 12 "not enough space at $envs_dir: $(human "$free_kib") free, $(human "$need_kib") needed (2.5 x the bundle's $(human "$bundle_kib"))"
fi
staging=$(mktemp -d "$envs_dir/.$environment.staging.XXXXXX" 2>/dev/null) ||
  die 17 "cannot write in $envs_dir (read-only?)"
done_step preflight "bundle $bundle ($(human "$bundle_kib"), $kind), $(human "$free_kib") free at $envs_dir, route $route, hash ${hasher[0]}, $target_note"

# Extract, hashing the same bytes: tee feeds tar and, through a FIFO, the hasher. tee -p keeps feeding the
# hasher when tar stops early (a corrupt archive), so a checksum verdict is always complete. Fd 8 holds the
# FIFO open for writing, so the hasher can never hang waiting for a writer. tar reads 128 KiB records (-b 256,
# -B: whatever the pipe hands over): fewer, larger reads than its 10 KiB default.
begin
mkdir -- "$staging/x" "$staging/tmp"
mkfifo -- "$staging/hash.fifo"
exec 8<>"$staging/hash.fifo"
"${hasher[@]}" <"$staging/hash.fifo" >"$staging/hash.out" 8>&- &
hash_pid=$!
set +e
tee -p -- "$staging/hash.fifo" <"$bundle" 8>&- |
  tar -x --no-same-owner -B -b 256 -f - -C "$staging/x" 8>&- 2>"$staging/tar.err"
statuses=("${PIPESTATUS[@]}")
set -e
exec 8>&-
hash_rc=0
wait "$hash_pid" || hash_rc=$?
hash_pid=""
actual=""
[ "${statuses[0]}" = 0 ] || die 10 "reading $bundle failed (tee exited ${statuses[0]})"
[ "$hash_rc" != 0 ] || read -r actual _ <"$staging/hash.out" || true
[[ $actual =~ ^[0-9a-f]{64}$ ]] || die 13 "extraction failed: hashing $bundle failed (${hasher[0]} exited $hash_rc)"
if [ -n "$pin" ] && [ "$actual" != "$pin" ]; then
  die 11 "checksum mismatch: $bundle has sha256 $actual, $pin_source says $pin"
fi
if [ "${statuses[1]}" != 0 ]; then
  die 13 "extraction failed: $bundle: $(tail -n 1 "$staging/tar.err" 2>/dev/null) (tar exited ${statuses[1]})"
fi
x="$staging/x"
case $kind in
  pixi-pack) [ -f "$x/pixi-pack.json" ] && [ -f "$x/environment.yml" ] && [ -d "$x/channel" ] ;;
  wheelhouse) [ -f "$x/requirements.txt" ] && [ -d "$x/wheels" ] ;;
esac || die 13 "extraction failed: the extracted $kind bundle lacks its root entries"
if [ -n "$pin" ]; then
  done_step extract "sha256 $actual matches $pin_source (one read for both)"
else
  done_step extract "sha256 $actual (no pin: set AUTO_INFER_SGLANG_BUNDLE_SHA256 or put $bundle.sha256 beside it)"
fi

# Install into a new versioned directory at its final path.
begin
n=0
while IFS= read -r d; do
  d=${d##*/}
  d=${d#"$environment".}
  [ "$((10#$d))" -le "$n" ] || n=$((10#$d))
done < <(versioned_dirs)
new_name="$environment.$((n + 1))"
new_dir="$envs_dir/$new_name"
log="$staging/install.log"
install_failed() {
  tail -n 15 "$log" 2>/dev/null | sed 's/^/  | /' >&2
  die 14 "install failed ($route): $1"
}
export TMPDIR="$staging/tmp"

# The template's pixi.toml for the packed environment only: channels = the local ./channel, PyPI from
# the local ./pypi (find-links; per-package indexes dropped), no conda->PyPI mapping download.
patch_manifest() {
  awk -v env="$environment" '
    function header(line) { sub(/^[ \t]*\[+[ \t]*/, "", line); sub(/[ \t]*\]+.*$/, "", line); return line }
    /^[ \t]*\[/ {
      if (table == "pypi-options" && !links) { print "find-links = [{ path = \"./pypi\" }]"; links = 1 }
      table = header($0); skip = 0
      print
      if (table == "workspace" || table == "project") print "conda-pypi-map = false"
      if (table == "pypi-options") { print "find-links = [{ path = \"./pypi\" }]"; links = 1 }
      next
    }
    skip { if ($0 ~ /\]/) skip = 0; next }
    /^[ \t]*channels[ \t]*=/ {
      print "channels = [\"./channel\"]"
      if ($0 ~ /\[/ && $0 !~ /\]/) skip = 1
      next
    }
    (table == "workspace" || table == "project") && /^[ \t]*conda-pypi-map[ \t]*=/ { next }
    table == "pypi-options" && /^[ \t]*(index-url|extra-index-urls|find-links)[ \t]*=/ {
      if ($0 ~ /\[/ && $0 !~ /\]/) skip = 1
      next
    }
    table == "environments" && /^[ \t]*[A-Za-z0-9_"-]+[ \t]*=/ {
      key = $0; sub(/^[ \t]*"?/, "", key); sub(/"?[ \t]*=.*$/, "", key)
      if (key != env) next
    }
    {
      gsub(/,[ \t]*index[ \t]*=[ \t]*"[^"]*"/, "")
      gsub(/index[ \t]*=[ \t]*"[^"]*"[ \t]*,[ \t]*/, "")
      print
    }
    END {
      if (!links) { print ""; print "[pypi-options]"; print "find-links = [{ path = \"./pypi\" }]" }
    }
  '
}

case $route in
  pip)
    "$python_bin" -m venv "$new_dir" >"$log" 2>&1 || install_failed "$python_bin -m venv $new_dir failed"
    PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CONFIG_FILE=/dev/null \
      "$new_dir/bin/python" -m pip install --no-index --no-cache-dir --find-links "$x/wheels" \
      -r "$x/requirements.txt" >>"$log" 2>&1 ||
      install_failed "pip install --no-index --find-links wheels -r requirements.txt failed"
    ;;
  pixi-unpack)
    # pixi-unpack writes <out>/<env-name> and <out>/activate.sh; the environment lands at its final path.
    pixi-unpack -o "$envs_dir" -e "$new_name" "$x" >"$log" 2>&1 || install_failed "pixi-unpack failed"
    [ -d "$new_dir" ] || install_failed "pixi-unpack did not create $new_dir"
    if [ -f "$envs_dir/activate.sh" ]; then
      mv -f -- "$envs_dir/activate.sh" "$new_dir/activate.sh"
    fi
    ;;
  pixi-relock)
    # A pixi project of its own at the final location: the new lock holds absolute paths to ./channel.
    mkdir -- "$new_dir"
    mv -- "$x/channel" "$new_dir/channel"
    if [ -d "$x/pypi" ]; then mv -- "$x/pypi" "$new_dir/pypi"; else mkdir -- "$new_dir/pypi"; fi
    patch_manifest <"$template_dir/pixi.toml" >"$new_dir/pixi.toml"
    # Its package cache lives in the new directory too: the environment's files are hard links into it
    # (no extra space) or, where pixi links by symlink, must outlive the install.
    export PIXI_CACHE_DIR="$new_dir/.pixi-cache"
    pixi lock --offline --manifest-path "$new_dir/pixi.toml" >"$log" 2>&1 ||
      install_failed "pixi lock against the local channel failed"
    pixi install --frozen --offline --manifest-path "$new_dir/pixi.toml" -e "$environment" >>"$log" 2>&1 ||
      install_failed "pixi install --frozen failed"
    [ -x "$new_dir/.pixi/envs/$environment/bin/python" ] ||
      install_failed "pixi install made no $new_dir/.pixi/envs/$environment/bin/python"
    rm -rf -- "$new_dir/channel" "$new_dir/pypi" # extracted into the cache and installed: not needed now
    ;;
esac
new_prefix=$(prefix_of "$new_dir")
[ -x "$new_prefix/bin/python" ] || install_failed "$new_prefix/bin/python is missing"
done_step install "$kind via $route into $new_prefix"

run_verify "$new_prefix"

# Marker, then the switch, then pruning.
begin
TZ=UTC0 printf -v installed_at '%(%Y-%m-%dT%H:%M:%SZ)T' -1
{
  printf '{\n'
  printf '  "format": 1,\n'
  printf '  "bundle_path": %s,\n' "$(json_string "$bundle")"
  printf '  "bundle_size": %s,\n' "$bundle_size"
  printf '  "bundle_mtime": "%s",\n' "$bundle_mtime"
  printf '  "sha256": "%s",\n' "$actual"
  if [ -n "$pin_source" ]; then
    printf '  "sha256_pinned_by": %s,\n' "$(json_string "$pin_source")"
  else
    printf '  "sha256_pinned_by": null,\n'
  fi
  printf '  "kind": "%s",\n' "$kind"
  printf '  "route": "%s",\n' "$route"
  printf '  "environment_dir": %s,\n' "$(json_string "$new_name")"
  printf '  "sglangc_version": %s,\n' "$(json_string "$sglangc_version")"
  printf '  "installed_at": "%s"\n' "$installed_at"
  printf '}\n'
} >"$new_prefix/$marker_name.tmp"
mv -f -- "$new_prefix/$marker_name.tmp" "$new_prefix/$marker_name"

previous=$(current_name)
if [ -d "$PREFIX" ] && [ ! -L "$PREFIX" ]; then
  # A real directory from before (e.g. a plain pixi install): renamed aside so the symlink can take its
  # place; processes already running from it go on, new ones use the new environment.
  legacy_name="$environment.$((n + 2))"
  mv -T -- "$PREFIX" "$envs_dir/$legacy_name" || install_failed "cannot move the old $PREFIX aside"
  printf '{\n  "format": 1,\n  "kind": "legacy",\n  "moved_from": %s\n}\n' "$(json_string "$PREFIX")" \
    >"$envs_dir/$legacy_name/$marker_name" || true
  previous=$legacy_name
  warn "$PREFIX was a directory, not a symlink: moved to $envs_dir/$legacy_name (kept as the previous environment)"
fi
tmp_link="$envs_dir/.$environment.link.$$"
ln -s -- "${new_prefix#"$envs_dir"/}" "$tmp_link"
if ! mv -T -- "$tmp_link" "$PREFIX"; then
  [ -z "${legacy_name-}" ] || mv -T -- "$envs_dir/$legacy_name" "$PREFIX" || true
  install_failed "cannot switch $PREFIX to $new_prefix"
fi
switched=1
tmp_link=""
removed=0
while IFS= read -r d; do
  case ${d##*/} in "$new_name" | "$previous") continue ;; esac
  if rm -rf -- "$d"; then removed=$((removed + 1)); else warn "cannot remove the old environment $d"; fi
done < <(versioned_dirs)
done_step activate "$PREFIX -> ${new_prefix#"$envs_dir"/}${previous:+ (previous $previous kept)}, $removed older removed"
if [ "$unchecked" = 1 ]; then
  warn "$bundle has no bundle.json (made by an older sglangc bundle): it was not checked against this container's glibc, driver and Python"
fi
total_us=$(($(now_us) - t_start))
say "done: $bundle installed into $PREFIX in $((total_us / 1000000)).$((total_us % 1000000 / 100000))s"
