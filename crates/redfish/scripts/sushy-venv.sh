#!/usr/bin/env bash
# Creates (or reuses) a Python virtualenv with sushy-tools 2.2.0 (OpenStack's Redfish emulator) and
# bcrypt, for crates/redfish/tests/sushy.rs. Prints the venv path on stdout; progress goes to stderr.
#
#   VENV=$(crates/redfish/scripts/sushy-venv.sh)   # CI can call this first to warm the cache
#
# Location: ${METAL_CACHE:-~/.cache/metal}/sushy-venv
set -euo pipefail
CACHE="${METAL_CACHE:-$HOME/.cache/metal}"
VENV="$CACHE/sushy-venv"
if [ -x "$VENV/bin/sushy-emulator" ] && "$VENV/bin/python" -c 'import bcrypt, sushy_tools' 2>/dev/null; then
  echo "$VENV"
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 2; }
mkdir -p "$CACHE"
rm -rf "$VENV"
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check 'sushy-tools==2.2.0' bcrypt >&2
"$VENV/bin/python" -c 'import bcrypt, sushy_tools' >&2
echo "$VENV"
