#!/usr/bin/env bash
# setup.sh — installs what laic needs to build and test on Debian 12, and the CLIP BPE vocabulary.
#
#   bash scripts/setup.sh          (run as root, or with sudo available)
#
# 1. Debian packages (by name, nothing vendored):
#      build-essential pkg-config       compiler, make
#      libinih-dev                      INI configs
#      libcjson-dev                     safetensors headers, report.json
#      libjpeg62-turbo-dev libpng-dev   image decoding
#      libopenblas-dev                  CPU GEMM (cblas_sgemm) for the reference backend
#      libopenblas-openmp-dev           its OpenMP build, which laic links (one thread pool)
#      zlib1g-dev                       the .gz vocabulary, IDX datasets
#      wordnet-base                     WordNet 3.0 nouns (/usr/share/wordnet/data.noun)
#      dataset-fashion-mnist            the demo dataset
#      unicode-data                     Unicode tables for the tokenizer generator script
#      python3-pip                      only to fetch the vocabulary wheel below
#      libopenmpi-dev openmpi-bin       MPI (optional for the build: make prints ✓/✗ MPI): runs
#                                       over several processes/nodes with mpirun or srun, and the
#                                       mpirun tests of make test
#      clang libclang-rt-14-dev         `make fuzz`: clang and its libFuzzer + sanitizer runtimes
#      libomp-14-dev                    clang's OpenMP (the fuzz build compiles host/ with clang)
#    The CUDA toolkit is not installed here: with nvcc on PATH, `make` also builds the kernels.
# 2. The CLIP vocabulary bpe_simple_vocab_16e6.txt.gz (MIT, OpenAI), taken out of the
#    open-clip-torch wheel from PyPI and checked by sha256, into assets/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="build-essential pkg-config libinih-dev libcjson-dev libjpeg62-turbo-dev libpng-dev
      libopenblas-dev libopenblas-openmp-dev zlib1g-dev wordnet-base dataset-fashion-mnist unicode-data python3-pip
      libopenmpi-dev openmpi-bin
      clang libclang-rt-14-dev libomp-14-dev"
missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
    echo "setup: installing Debian packages:" $missing
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "setup: ✓ Debian packages present"
fi

VOCAB=assets/bpe_simple_vocab_16e6.txt.gz
SHA=924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a
if [ -f "$VOCAB" ] && echo "$SHA  $VOCAB" | sha256sum -c --status; then
    echo "setup: ✓ $VOCAB"
else
    mkdir -p assets
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    PY=python3; command -v python3 >/dev/null || { echo "setup: python3 is needed to fetch the vocabulary" >&2; exit 1; }
    $PY -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "open-clip-torch==2.32.0" \
        || $PY -m pip download -q --no-deps --only-binary=:all: -d "$tmp" open-clip-torch
    whl=$(ls "$tmp"/open_clip_torch-*.whl | head -n 1)
    $PY - "$whl" "$tmp/vocab.gz" <<'PYEOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    data = z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
open(sys.argv[2], "wb").write(data)
PYEOF
    if ! echo "$SHA  $tmp/vocab.gz" | sha256sum -c --status; then
        echo "setup: $whl: vocabulary sha256 mismatch (expected $SHA)" >&2
        exit 1
    fi
    mv "$tmp/vocab.gz" "$VOCAB"
    echo "setup: ✓ $VOCAB installed from $(basename "$whl") (sha256 ok)"
fi
