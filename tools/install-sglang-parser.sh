#!/usr/bin/env bash
# install-sglang-parser.sh VENV_DIR SGLANG_VERSION
#
# Creates (or reuses) a Python venv at VENV_DIR holding the smallest install
# that can `import sglang.srt.server_args` on a machine without a GPU, i.e.
# enough to build the real SGLang CLI parser (ServerArgs.add_cli_args) and to
# run prepare_server_args() / the --config YAML merger.
#
# Recipe (the smallest CPU-only install that imports the parser): torch (+torchvision, see
# below), triton (imported at module level by sglang), a short list of
# runtime deps, then sglang itself with --no-deps.  sglang's own pins
# (flashinfer, sglang-kernel, cuda-python, ...) are deliberately NOT
# installed: this venv can parse arguments, it cannot serve a model.
#
# Idempotent: if VENV_DIR/bin/python already imports sglang.srt.server_args
# and reports SGLANG_VERSION, nothing is done.
#
# Environment:
#   SGLANGC_BASE_PYTHON  interpreter used to create the venv (default: python3;
#                        must be >= 3.11 for sglang 0.5.22+).
set -euo pipefail

usage() {
    echo "usage: $0 VENV_DIR SGLANG_VERSION" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
VENV_DIR=$1
SGLANG_VERSION=$2
[[ -n $VENV_DIR && -n $SGLANG_VERSION ]] || usage

BASE_PYTHON=${SGLANGC_BASE_PYTHON:-python3}

# torch + torchvision.  sglang's own pins are ignored (sglang goes in with
# --no-deps).  A CPU-only torch (2.13.0+cpu) would do for 0.5.23, but releases
# up to at least 0.5.10.post1 import torchvision at module level
# (sglang/srt/utils/common.py: `from torchvision.io import decode_jpeg`), and
# PyPI only has CUDA builds of torchvision, whose C extension needs
# libtorch_cuda.so: on a CPU torch, `import torchvision` dies with
# "operator torchvision::nms does not exist".  So we use the CUDA build of
# torch 2.14.1 (0.5.23's own pin; it imports fine without a GPU) with its
# matching torchvision.  Both wheels and their nvidia-* deps are on this
# project's machines' local wheel mirror, so nothing large is downloaded.
TORCH_SPECS=("torch==2.14.1" "torchvision==0.29.1")
# triton: sglang imports it at module level; torch 2.14.1 wants ~=3.8.0.
TRITON_SPEC="triton==3.8.0"

# One list that makes `import sglang.srt.server_args` work for every sglang
# version whose catalog we ship (0.5.10.post1 and 0.5.23), found by importing
# and adding what was missing.  0.5.23 needs only the first block;
# 0.5.10.post1 also imports transformers, openai, ... at module level.
# pyyaml is needed by the --config merger.
EXTRA_DEPS=(
    aiohttp
    ipython
    msgspec
    numpy
    orjson
    packaging
    pillow
    psutil
    pybase64
    pydantic
    pyyaml
    pyzmq
    requests
    starlette
    tqdm
    # needed by older releases (0.5.10.post1)
    dill
    openai
    partial_json_parser
    safetensors
    sentencepiece
    transformers
)
# What SGLang's start-up resolution (ServerArgs.resolve_once, check_server_args) imports beyond the parser, so
# the tests can run it on CPU for every planned layout; --no-deps: their own pins are not needed for that.
RESOLUTION_DEPS=(apache-tvm-ffi compressed-tensors gguf loguru)

venv_python="$VENV_DIR/bin/python"

# Exit status 0 iff $venv_python imports the parser module and its installed
# sglang distribution is exactly $SGLANG_VERSION.
venv_ok() {
    [[ -x $venv_python ]] || return 1
    "$venv_python" - "$SGLANG_VERSION" >/dev/null 2>&1 <<'EOF'
import importlib.metadata
import sys

import sglang.srt.server_args  # noqa: F401
import compressed_tensors, gguf, loguru, tvm_ffi  # noqa: F401,E401 - the resolution's

sys.exit(0 if importlib.metadata.version("sglang") == sys.argv[1] else 1)
EOF
}

if venv_ok; then
    echo "install-sglang-parser: $VENV_DIR already has sglang $SGLANG_VERSION; nothing to do"
    exit 0
fi

echo "install-sglang-parser: installing sglang $SGLANG_VERSION parser into $VENV_DIR"
if [[ ! -x $venv_python ]]; then
    "$BASE_PYTHON" -m venv "$VENV_DIR"
fi

pip_install() {
    "$venv_python" -m pip install -q --disable-pip-version-check "$@"
}

# Dependencies first, sglang last with --no-deps: pip then skips its
# dependency-conflict report, which would list every unmet sglang pin.
pip_install "${TORCH_SPECS[@]}" "$TRITON_SPEC" "${EXTRA_DEPS[@]}"
pip_install --no-deps "sglang==$SGLANG_VERSION" "${RESOLUTION_DEPS[@]}"

if ! venv_ok; then
    echo "install-sglang-parser: ERROR: $venv_python still cannot import" \
        "sglang.srt.server_args at version $SGLANG_VERSION:" >&2
    "$venv_python" -c 'import importlib.metadata, sglang.srt.server_args; print(importlib.metadata.version("sglang"))' >&2 || true
    exit 1
fi
echo "install-sglang-parser: ok: $venv_python (sglang $SGLANG_VERSION)"
