#!/usr/bin/env bash
# Creates (once) the Python virtualenv with DeltaDeFi's official SDK that the SDK conformance
# test (tests/sdk_conformance.rs) drives the wire mock with. Pinned in tests/sdk/requirements.txt.
# The SDK's signer (cardano-python-signing-module) builds from source with cargo and SWIG:
# SWIG is installed from Debian's packages when missing (as root). Prints the venv's python.
#
#   scripts/sdk-venv.sh [VENV_DIR]      (default: target/sdk-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-target/sdk-venv}"
req=tests/sdk/requirements.txt
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "$venv/bin/python"
  exit 0
fi
if ! command -v swig >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq swig >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq swig; }) >&2
  else
    echo "SWIG is required to build the SDK's signing module: install it (apt install swig)" >&2
    exit 1
  fi
fi
py="$(command -v python3.11 || command -v python3)"
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "DeltaDeFi's SDK needs Python 3.11 or newer ($py is older)" >&2; exit 1; }
rm -rf "$venv"
if ! "$py" -m venv "$venv" >&2; then
  # Debian's python3 ships venv separately.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq python3-venv || { apt-get update -qq && apt-get install -y -qq python3-venv; }) >&2
    rm -rf "$venv"
    "$py" -m venv "$venv" >&2
  else
    echo "cannot create a virtualenv with $py (install python3-venv)" >&2; exit 1
  fi
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
