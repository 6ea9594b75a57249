#!/usr/bin/env bash
# Builds the PKCS#11 SM2 TEST token module (libp11sm2test.so) from C with gcc, OpenSSL 3
# (libssl-dev) and the PKCS#11 header of p11-kit (libp11-kit-dev).
# Usage: build.sh [OUTDIR]   (default: ./build beside this script). Rebuilds only when stale.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build}"
mkdir -p "$out"
lib="$out/libp11sm2test.so"
if [ -f "$lib" ] && [ "$lib" -nt "$here/p11_sm2_test_token.c" ]; then
  exit 0
fi
gcc -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-format-truncation -fPIC -fvisibility=hidden -shared \
  -o "$lib.tmp" "$here/p11_sm2_test_token.c" $(pkg-config --cflags p11-kit-1) $(pkg-config --cflags --libs libcrypto) -lpthread
mv "$lib.tmp" "$lib"
