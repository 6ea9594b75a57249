#!/usr/bin/env bash
# Builds the SKF TEST token library (libskftest.so) from C with gcc and OpenSSL 3 (libssl-dev).
# Usage: build.sh [OUTDIR]   (default: ./build beside this script). Rebuilds only when stale.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build}"
mkdir -p "$out"
lib="$out/libskftest.so"
if [ -f "$lib" ] && [ "$lib" -nt "$here/skf_test_token.c" ] && [ "$lib" -nt "$here/skf_test_token.h" ]; then
  exit 0
fi
gcc -std=c11 -O2 -g -Wall -Wextra -Werror -Wno-format-truncation -fPIC -fvisibility=hidden -shared \
  -o "$lib.tmp" "$here/skf_test_token.c" $(pkg-config --cflags --libs libcrypto) -lpthread
mv "$lib.tmp" "$lib"
