# shellcheck shell=bash
# sglangc runtime: the body of download-models.sh.
#
# Fetches the weights of each instance that has a download table, with the hub client of the installed
# environment ($PREFIX/bin/python with huggingface_hub, or modelscope): nothing but the bundle's Python.
#   download-models.sh [NAME...]           the named instances (default: every enabled one with a download)
#   download-models.sh --verify [NAME...]  also re-hash every file of a complete model
#   download-models.sh --help
#
# Where a model lands: model_path is a symbolic link to a complete, verified version of the model in a
# directory beside it, <dir>/.<base>.sglangc/ (the same file system, so every switch is a rename):
#   partial/      the download in progress; a killed run continues there (each file resumes from its last
#                 byte: <partial>/.sglangc/<file>.part, or modelscope's own <partial>/.sglangc/ms/<file>.incomplete),
#                 and is moved into place only when complete
#   <commit>[.N]/ a complete version, with the hub's listing of what it holds (.sglangc-download)
# So model_path holds a complete model or the one it held before, never half of one. After the switch the
# versions model_path no longer names are removed.
#
# Verified: every file's size, and its checksum from the hub (the SHA-256 of LFS files, the git blob id of
# the others), as it arrives; every shard that model.safetensors.index.json names is there. A complete model
# is recognised by its listing, each file's size and mtime (in nanoseconds) as recorded: a file changed on
# disk is fetched again (--verify re-hashes every file). With a pinned revision (a commit id) a complete model
# is checked without any network call; with a branch or tag the hub is asked which commit it names now.
#
# The token (the variable the instance's token_env names) reaches the client through its environment
# (HF_TOKEN, MODELSCOPE_API_TOKEN), never a command line, and is redacted from whatever the client prints.
#
# The generated download-models.sh sets these, then sources lib/prelude.sh and this file:
#   me config                  the message prefix, the config it was compiled from
#   default_project_dir,       where the environment lives, unless AUTO_INFER_SGLANG_PIXI_PROJECT_DIR /
#   default_environment        AUTO_INFER_SGLANG_PIXI_ENVIRONMENT say otherwise
#   models                     one row per instance with a download table (see `read_models` below)
# Environment: AUTO_INFER_SGLANG_DOWNLOAD_TRIES (default 4) tries per hub call, with backoff (2, 4, 8 … s,
# at most 60) after a network failure; HF_ENDPOINT / MODELSCOPE_ENDPOINT point the clients at another hub.
#
# Exit codes (the first failure's, after trying every instance): 0 every model complete, 2 usage,
# 20 client or tool missing, 21 no network (hub unreachable), 22 unknown repository or revision,
# 23 token refused (or the repository needs one), 24 disk full, 25 verification failed (a file's size or
# checksum, or a shard the index names), 26 model_path unusable, 27 download failed (the hub kept failing).
shopt -s nullglob

resolve_prefix
tries=${AUTO_INFER_SGLANG_DOWNLOAD_TRIES:-4}
[[ $tries =~ ^[1-9][0-9]?$ ]] || die 2 "AUTO_INFER_SGLANG_DOWNLOAD_TRIES=$tries: give a number of tries from 1 to 99"
python="$PREFIX/bin/python"

usage() {
  printf '%s\n' "usage: $me [--verify] [NAME...]" \
    "Fetches the missing weights of the named instances (default: every enabled one with a download table)." \
    "  --verify  also re-hash every file of a model that looks complete" \
    "instances: ${names[*]:-(none)}" \
    "config: $config" \
    "exit codes: 0 complete, 2 usage, 20 client missing, 21 no network, 22 unknown repository or revision," \
    "23 token refused, 24 disk full, 25 verification failed, 26 model_path unusable, 27 download failed"
}

# One array per field of `models`, indexed by instance: name, enabled (yes/no), source, repo, revision,
# pinned (yes/no), model_path, the token's variable ('' for none), then the include patterns and the exclude
# patterns, each list led by its length; the patterns of instance i are patterns[pat_at[i]…].
# `requests[i]` is what the instance asks for, as one line of a version's record: another request, another model.
names=() enabled=() sources=() repos=() revisions=() pinned=() paths=() token_envs=() pat_at=() patterns=()
requests=()
read_models() {
  local i=0 at n m
  while [ "$i" -lt "${#models[@]}" ]; do
    names+=("${models[i]}") enabled+=("${models[i + 1]}") sources+=("${models[i + 2]}") repos+=("${models[i + 3]}")
    revisions+=("${models[i + 4]}") pinned+=("${models[i + 5]}") paths+=("${models[i + 6]}")
    token_envs+=("${models[i + 7]}")
    at=$((i + 8))
    n=${models[at]}
    m=${models[at + n + 1]}
    pat_at+=("${#patterns[@]}")
    patterns+=("${models[@]:at:n+m+2}")
    requests+=("request ${models[*]:i + 2:3} ${models[*]:at:n+m+2}")
    i=$((at + n + m + 2))
  done
}
read_models

# The client's side, in the environment's Python: `list` prints the commit a revision names and one line per
# file to fetch (size, SHA-256 or -, git blob id or -, path); `get` fetches one file of a commit into DEST,
# continuing after the bytes DEST already holds. A failure is one line on stderr and an exit code above.
# shellcheck disable=SC2016 # Python, not shell
hub_py='
import errno, os, sys

def split(args):
    n = int(args[0])
    include, rest = args[1:1 + n], args[1 + n:]
    return include, rest[1:1 + int(rest[0])]

def hf_list(repo, rev, args):
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects
    include, exclude = split(args)
    info = HfApi().model_info(repo, revision=rev, files_metadata=True)
    siblings = list(info.siblings or [])
    keep = set(filter_repo_objects([s.rfilename for s in siblings], allow_patterns=include or None,
                                   ignore_patterns=exclude or None))
    print(info.sha)
    for s in siblings:
        if s.rfilename in keep:
            lfs = s.lfs
            sha = (lfs.get("sha256") if isinstance(lfs, dict) else lfs.sha256) if lfs else None
            print("%s\t%s\t%s\t%s" % (s.size, sha or "-", s.blob_id or "-", s.rfilename))

def hf_get(repo, commit, path, dest, size):
    from huggingface_hub import hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers
    url = hf_hub_url(repo, path, revision=commit)
    with open(dest, "ab") as f:
        http_get(url, f, resume_size=f.tell(), headers=build_hf_headers(), expected_size=int(size))

def ms_list(repo, rev, args):
    import fnmatch, hashlib
    include, exclude = split(args)
    try:  # modelscope >= 1.40 (modelscope_hub): sizes and SHA-256
        from modelscope_hub.api import HubApi
        found = [(f.path, f.size, f.sha256) for f in HubApi().list_repo_files(repo, "model", revision=rev)
                 if (getattr(f, "type", None) or "blob") != "tree"]
    except ImportError:
        from modelscope.hub.api import HubApi
        found = [(f["Path"], f.get("Size", 0), f.get("Sha256")) for f in
                 HubApi().get_model_files(repo, revision=rev, recursive=True) if f.get("Type") != "tree"]
    files = [f for f in found if (not include or any(fnmatch.fnmatch(f[0], p) for p in include))
             and not any(fnmatch.fnmatch(f[0], p) for p in exclude)]
    # ModelScope names no commit in a listing: what the revision holds now stands for it
    print("ms-" + hashlib.sha1(repr(sorted(found)).encode()).hexdigest())
    for path, size, sha in files:
        print("%s\t%s\t-\t%s" % (size, sha or "-", path))

def chain(e):
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__

def classify(e):
    names = set()
    for x in chain(e):
        names.update(c.__name__ for c in type(x).__mro__)
        if isinstance(x, OSError) and x.errno == errno.ENOSPC:
            return 24, "disk full"
    status = getattr(getattr(e, "response", None), "status_code", None) or getattr(e, "status_code", None)
    if names & {"GatedRepoError", "AuthenticationError", "PermissionDeniedError"} or status in (401, 403):
        return 23, "the hub refused access (token missing, wrong or without access to this repository)"
    if "RevisionNotFoundError" in names:
        return 22, "unknown revision"
    if names & {"RepositoryNotFoundError", "RepoNotFoundError"}:
        return 22, "unknown repository (or a private one: it needs a token)"
    if names & {"NotExistError", "NotFoundError"} or status == 404:
        return 22, "unknown repository or revision (or a private repository: it needs a token)"
    network = {"ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError", "ConnectionError",
               "OfflineModeIsEnabled", "ProxyError", "RemoteProtocolError", "ReadTimeout", "ReadError"}
    if names & network or "TransportError" in names:
        return 21, "the hub cannot be reached"
    return 27, "download failed"

try:
    mode, source, repo, rev = sys.argv[1:5]
    if source == "modelscope":
        ms_list(repo, rev, sys.argv[5:])
    elif mode == "list":
        hf_list(repo, rev, sys.argv[5:])
    else:
        hf_get(repo, rev, *sys.argv[5:8])
except ImportError as e:
    sys.stderr.write("the environment has no hub client: %s\n" % e)
    sys.exit(20)
except Exception as e:
    code, what = classify(e)
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    sys.stderr.write("%s (%s: %s)\n" % (what, type(e).__name__, lines[0] if lines else ""))
    sys.exit(code)
'

# Sizes for people: 1.5 GiB, 20.0 MiB, 300 B.
human() {
  local b=$1 unit=B scale=1
  if [ "$b" -ge $((1 << 30)) ]; then
    unit=GiB scale=$((1 << 30))
  elif [ "$b" -ge $((1 << 20)) ]; then
    unit=MiB scale=$((1 << 20))
  elif [ "$b" -ge 1024 ]; then
    unit=KiB scale=1024
  fi
  if [ "$scale" = 1 ]; then
    printf '%s B' "$b"
  else
    printf '%s.%s %s' "$((b / scale))" "$((b * 10 / scale % 10))" "$unit"
  fi
}

# The checksum of a file as the hub lists it: its SHA-256 (LFS) or its git blob id. In `sum`.
sum=""
checksum() { # FILE SIZE SHA256 BLOB
  if [ "$3" != - ]; then
    sum=$(sha256sum -- "$1") || return 1
  else
    sum=$({ printf 'blob %s\0' "$2" && cat -- "$1"; } | sha1sum) || return 1
  fi
  sum=${sum%% *}
}
matches() { # FILE SIZE SHA256 BLOB: the size and checksum the hub lists
  local size
  size=$(stat -c %s -- "$1" 2>/dev/null) && [ "$size" = "$2" ] || return 1
  [ "$3" != - ] || [ "$4" != - ] || return 0 # the hub lists no checksum: the size is all there is
  checksum "$@" || return 1
  if [ "$3" != - ]; then [ "$sum" = "$3" ]; else [ "$sum" = "$4" ]; fi
}

# Run the client for instance $i, its token in its environment, its stdout into the file $1; the last line
# of its stderr (redacted) in `said`. HF_HUB_OFFLINE=1 in the container (meant for SGLang) does not stop it.
said=""
client() {
  local rc=0 into=$1 err="$work/stderr" variable=${token_envs[i]} token=""
  shift
  [ -z "$variable" ] || token=${!variable:-}
  if [ -n "$token" ]; then
    HF_TOKEN=$token MODELSCOPE_API_TOKEN=$token HF_HUB_OFFLINE=0 HF_HUB_DISABLE_PROGRESS_BARS=1 "$@" >"$into" 2>"$err" </dev/null || rc=$?
  else
    HF_HUB_OFFLINE=0 HF_HUB_DISABLE_PROGRESS_BARS=1 "$@" >"$into" 2>"$err" </dev/null || rc=$?
  fi
  said=$(tail -n 1 -- "$err")
  redact "$said"
  said=$redacted
  return "$rc"
}

# A hub call with bounded retries: a network failure (21), a failing hub (27) or a file that arrived damaged
# (25) is tried again after 2, 4, 8 … seconds (at most 60); anything else ends it. Its code in `last_rc`.
last_rc=0
with_retries() {
  local try=1 wait=2
  while :; do
    last_rc=0
    "$@" || last_rc=$?
    case $last_rc in 21 | 25 | 27) ;; *) return "$last_rc" ;; esac
    [ "$try" -lt "$tries" ] || return "$last_rc"
    warn "${names[i]}: $said; try $((try + 1)) of $tries in ${wait}s"
    sleep "$wait"
    try=$((try + 1)) wait=$((wait * 2 > 60 ? 60 : wait * 2))
  done
}

# The hub's listing for instance $i: the commit in `commit`, the files in `listing` (lines as hub_py prints).
commit="" listing=""
list_files() {
  client "$work/listing" "$python" -I -c "$hub_py" list "${sources[i]}" "${repos[i]}" "${revisions[i]}" \
    "${patterns[@]:pat_at[i]}" || return
  { IFS= read -r commit && listing=$(cat); } <"$work/listing" || { said="the client listed nothing"; return 27; }
}

# Whether the version directory $1 holds what its record says and matches instance $i's request; the files
# whose size or mtime differ from the record (or, with --verify, whose checksum does) in `stale`.
record=.sglangc-download
stale=() recorded_commit="" recorded_listing=""
complete() {
  local dir=$1 want line size mtime sha blob path stat_out
  stale=() recorded_commit="" recorded_listing=""
  [ -f "$dir/$record" ] || return 1
  want=${requests[i]}
  {
    IFS= read -r line && [ "$line" = "$want" ] || return 1
    IFS= read -r recorded_commit || return 1
    while IFS=$'\t' read -r size mtime sha blob path; do
      recorded_listing+="$size"$'\t'"$sha"$'\t'"$blob"$'\t'"$path"$'\n'
      stat_out=$(stat -c '%s %.9Y' -- "$dir/$path" 2>/dev/null) || stat_out=""
      if [ "$stat_out" != "$size $mtime" ] || { [ "$verify_all" = 1 ] && ! matches "$dir/$path" "$size" "$sha" "$blob"; }; then
        stale+=("$path")
      fi
    done
  } <"$dir/$record"
  [ "${#stale[@]}" = 0 ]
}

# Every shard model.safetensors.index.json names is in $1.
shards_present() {
  local index="$1/model.safetensors.index.json" shard
  [ -f "$index" ] || return 0
  while IFS= read -r shard; do
    [ -s "$1/$shard" ] || { why="model.safetensors.index.json names $shard, which the download does not hold (an include or exclude pattern may leave it out)"; return 1; }
  done < <(grep -o '"[^"/]*\.safetensors"' "$index" | tr -d '"' | sort -u)
}

why=""
# Fetch one file of the listing into the partial directory, verified; a progress line when done.
fetch_file() { # SIZE SHA256 BLOB PATH
  local size=$1 sha=$2 blob=$3 path=$4 part="$partial/.sglangc/$4.part" have=0 started rc
  mkdir -p -- "${part%/*}" "$(dirname -- "$partial/$path")" || { why="cannot write in $partial"; return 26; }
  [ ! -f "$part" ] || have=$(stat -c %s -- "$part")
  if [ "$have" -gt "$size" ]; then
    rm -f -- "$part"
    have=0
  fi
  if [ "${sources[i]}" = modelscope ] && [ -f "$partial/.sglangc/ms/$path.incomplete" ]; then
    have=$(stat -c %s -- "$partial/.sglangc/ms/$path.incomplete") # modelscope resumes its own
  fi
  started=$(now_us)
  if [ "${sources[i]}" = modelscope ]; then
    rc=0
    client /dev/null "$PREFIX/bin/modelscope" download "${repos[i]}" "$path" --revision "${revisions[i]}" --local-dir "$partial/.sglangc/ms" || rc=$?
    [ "$rc" = 0 ] || { why="modelscope download $path failed (exit status $rc): $said"; return 27; }
    mv -f -- "$partial/.sglangc/ms/$path" "$part" || { why="modelscope download left no $path"; return 27; }
  else
    client /dev/null "$python" -I -c "$hub_py" get huggingface "${repos[i]}" "$commit" "$path" "$part" "$size" || {
      rc=$?
      why="$path: $said"
      return "$rc"
    }
  fi
  if ! matches "$part" "$size" "$sha" "$blob"; then
    rm -f -- "$part"
    why="$path does not match the hub's size and checksum"
    said=$why
    return 25
  fi
  mv -f -- "$part" "$partial/$path"
  local took=$((($(now_us) - started) / 1000)) # ms
  local rate=$(((size - have) * 1000 / (took > 0 ? took : 1)))
  say "${names[i]}: $path: $(human "$size")$([ "$have" = 0 ] || printf ' (resumed at %s)' "$(human "$have")") in $((took / 1000)).$((took % 1000 / 100))s ($(human "$rate")/s)"
}

# Fetch, verify and switch the model of instance $i. Returns the exit code of its first failure.
fetch_model() {
  local name=${names[i]} model_path=${paths[i]} store current="" version line size sha blob path need=0 avail
  local -a todo=()
  store="${model_path%/*}/.${model_path##*/}.sglangc"
  partial="$store/partial"
  why=""
  if [ -L "$model_path" ]; then
    current=$(readlink -- "$model_path")
    [[ $current == ".${model_path##*/}.sglangc/"* ]] || { why="$model_path is a symbolic link to $current, not to a model download-models.sh made; remove it to download there"; return 26; }
    current="${model_path%/*}/$current"
  elif [ -e "$model_path" ]; then
    why="$model_path exists and was not made by download-models.sh; move it away (or drop the download table to use it as it is)"
    return 26
  fi
  mkdir -p -- "$store" 2>/dev/null || { why="cannot create $store (read-only file system?)"; return 26; }
  exec {lock}>>"$store/.lock" || { why="cannot open $store/.lock"; return 26; }
  flock "$lock" || { why="cannot lock $store/.lock"; return 26; }

  if [ -n "$current" ] && [ "${pinned[i]}" = yes ] && complete "$current"; then
    say "$name: complete: ${repos[i]} @ ${revisions[i]} in $model_path (pinned: the hub was not asked)"
    return 0
  fi
  if [ ! -x "$python" ] || { [ "${sources[i]}" = modelscope ] && [ ! -x "$PREFIX/bin/modelscope" ]; }; then
    why="the environment at $PREFIX has no $([ "${sources[i]}" = modelscope ] && echo "modelscope client" || echo Python) to download with; install it first (install-sglang-offline.sh)"
    return 20
  fi
  with_retries list_files || { why="${sources[i]} ${repos[i]} @ ${revisions[i]}: $said"; return "$last_rc"; }
  if [ -n "$current" ] && complete "$current" && [ "$recorded_commit" = "$commit" ]; then
    say "$name: complete: ${repos[i]} @ ${revisions[i]} (commit $commit) in $model_path"
    return 0
  fi
  [ -n "$listing" ] || { why="${repos[i]} @ ${revisions[i]} holds no file to fetch (check include and exclude)"; return 22; }

  # a partial download of another commit, or of another request (include, exclude), is of no use
  if [ -d "$partial" ] && [ "$(cat -- "$partial/.sglangc/commit" 2>/dev/null)" != "$commit ${requests[i]}" ]; then
    rm -rf -- "$partial"
  fi
  if ! { mkdir -p -- "$partial/.sglangc" && printf '%s\n' "$commit ${requests[i]}" >"$partial/.sglangc/commit"; }; then
    why="cannot write in $partial"
    return 26
  fi
  while IFS=$'\t' read -r size sha blob path; do
    [ -n "$path" ] || continue
    case /$path/ in */../* | */./*) why="the hub lists an unsafe path: $path"; return 25 ;; esac
    [ ! -e "$partial/$path" ] || continue # verified as it arrived
    if [ -n "$current" ] && [ -f "$current/$path" ] && [[ $recorded_listing == *"$size"$'\t'"$sha"$'\t'"$blob"$'\t'"$path"$'\n'* ]] &&
      ! printf '%s\n' "${stale[@]}" | grep -qxF -- "$path"; then
      mkdir -p -- "$(dirname -- "$partial/$path")" && ln -f -- "$current/$path" "$partial/$path" && continue
    fi
    todo+=("$size" "$sha" "$blob" "$path")
    need=$((need + size - $(stat -c %s -- "$partial/.sglangc/$path.part" 2>/dev/null || echo 0)))
  done <<<"$listing"

  avail=$(df -P -k -- "$store" 2>/dev/null | awk 'NR == 2 { print $4 }') || avail=""
  if [ -n "$avail" ] && [ $((avail * 1024)) -lt "$need" ]; then
    why="not enough space for ${repos[i]}: $(human "$need") to fetch, $(human $((avail * 1024))) free in $store; $model_path is unchanged"
    return 24
  fi
  [ "${#todo[@]}" = 0 ] || say "$name: fetching $((${#todo[@]} / 4)) file(s), $(human "$need"), of ${sources[i]} ${repos[i]} @ ${revisions[i]} (commit $commit) into $model_path"
  local k
  for ((k = 0; k < ${#todo[@]}; k += 4)); do
    with_retries fetch_file "${todo[@]:k:4}" || {
      why="$why; $model_path is unchanged (a new run continues the download)"
      return "$last_rc"
    }
  done
  shards_present "$partial" || return 25

  # the record: the request, the commit, then size, mtime, SHA-256, blob id and path of each file
  {
    printf '%s\n%s\n' "${requests[i]}" "$commit"
    while IFS=$'\t' read -r size sha blob path; do
      [ -n "$path" ] || continue
      printf '%s\t%s\t%s\t%s\t%s\n' "$size" "$(stat -c %.9Y -- "$partial/$path")" "$sha" "$blob" "$path"
    done <<<"$listing"
  } >"$partial/$record" || { why="cannot write $partial/$record"; return 24; }
  rm -rf -- "$partial/.sglangc"
  version="$store/$commit"
  [ ! -e "$version" ] || version="$store/$commit.$EPOCHSECONDS.$$"
  if ! { mv -T -- "$partial" "$version" && ln -sfn -- ".${model_path##*/}.sglangc/${version##*/}" "$store/.link" &&
    mv -T -- "$store/.link" "$model_path"; }; then
    why="cannot switch $model_path to $version"
    return 26
  fi
  for line in "$store"/*; do
    [ "$line" = "$version" ] || rm -rf -- "$line"
  done
  say "$name: complete: ${repos[i]} @ ${revisions[i]} (commit $commit) in $model_path"
}

# ---------------------------------------------------------------------------------------------------------
verify_all=0
wanted=()
for arg; do
  case $arg in
    -h | --help)
      usage
      exit 0
      ;;
    --verify) verify_all=1 ;;
    -*) die 2 "unknown option '$arg' (usage: $me [--verify] [NAME...])" ;;
    *) wanted+=("$arg") ;;
  esac
done

picked=()
if [ "${#wanted[@]}" = 0 ]; then
  for i in "${!names[@]}"; do
    [ "${enabled[i]}" != yes ] || picked+=("$i")
  done
else
  for name in "${wanted[@]}"; do
    found=""
    for i in "${!names[@]}"; do
      [ "${names[i]}" != "$name" ] || found=$i
    done
    [ -n "$found" ] || die 2 "no instance '$name' with a download table (known: ${names[*]:-none})"
    picked+=("$found")
  done
fi
[ "${#picked[@]}" -gt 0 ] || { say "no enabled instance has a download table: nothing to fetch"; exit 0; }

for tool in sha256sum sha1sum flock df stat; do
  command -v "$tool" >/dev/null 2>&1 || die 20 "$tool is not installed (coreutils, util-linux)"
done
for i in "${picked[@]}"; do
  variable=${token_envs[i]}
  if [ -n "$variable" ]; then
    add_secret_forms "${!variable:-}"
    [ -n "${!variable:-}" ] || warn "${names[i]}: the token variable $variable is not set: asking the hub without a token"
  fi
done

work=$(mktemp -d) || die 26 "cannot make a temporary directory"
trap 'rm -rf -- "$work"' EXIT
first=0 lock=""
for i in "${picked[@]}"; do
  rc=0
  fetch_model || rc=$?
  [ -z "$lock" ] || exec {lock}>&-
  lock=""
  if [ "$rc" != 0 ]; then
    printf '%s: error: %s: %s\n' "$me" "${names[i]}" "$why" >&2
    [ "$first" != 0 ] || first=$rc
  fi
done
exit "$first"
