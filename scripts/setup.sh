#!/usr/bin/env bash
# Installs everything the appliance, its demo and its tests need on Debian 12:
# Debian packages (root or sudo) and a venv at .venv with the project and test extras.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  softhsm2 opensc            # the PKCS#11 token in tests and the demo; pkcs11-tool
  poppler-utils qpdf         # pdfsig / pdftoppm and qpdf --check: independent verifiers
  fonts-noto-cjk fonts-wqy-zenhei   # CJK fonts for seal images and reports
  sqlite3                    # offline inspection of the state database
  python3-seccomp            # the unit syscall-filter test replays our stack under seccomp
  systemd                    # systemd-analyze for the unit checks
  faketime                   # issue 14: clock-marked tests run again at 03:10 and 23:50 UTC
  python3-venv python3-dev gcc pkg-config
  umockdev gir1.2-umockdev-1.0 libgirepository1.0-dev libcairo2-dev   # issue 3: real uevents in tests (PyGObject<3.51 builds against these)
  chromium chromium-driver   # issue 18: browser tests of sealweb (headless, virtual authenticator)
  libnss3-tools              # issue 18: certutil puts the test CA in the browser's NSS database
  libssl-dev                 # issue 19: the SKF (GM/T 0016) test token is C over OpenSSL 3's SM2/SM3
  libp11-kit-dev             # issue 19: pkcs11.h for the PKCS#11 SM2 test token (C)
  libcairo2                  # issue 16: CairoSVG (cairocffi) rasterises SVG seal impressions
)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c 'import seald, sealclient, pytest, certomancer' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ] || [ constraints.txt -nt .venv/.installed ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -c constraints.txt -e '.[test]'
  touch .venv/.installed
fi
# The SKF TEST token library (softhsm-fixtures/skf-test-token/README.md); no-op when up to date.
bash softhsm-fixtures/skf-test-token/build.sh
# The PKCS#11 SM2 TEST token module (softhsm-fixtures/p11-sm2-test-token/README.md); same.
bash softhsm-fixtures/p11-sm2-test-token/build.sh
echo "setup: ok"
