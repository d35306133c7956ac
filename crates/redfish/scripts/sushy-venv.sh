#!/usr/bin/env bash
# Creates (or reuses) a Python virtualenv with sushy-tools 2.2.0 (OpenStack's Redfish emulator) and
# bcrypt, for crates/redfish/tests/sushy.rs. Prints the venv path on stdout; progress goes to stderr.
#
#   VENV=$(crates/redfish/scripts/sushy-venv.sh)   # CI can call this first to warm the cache
#
# Location: ${METAL_CACHE:-~/.cache/metal}/sushy-venv
set -euo pipefail
VENV=$("$(dirname "$0")/../../../e2e/scripts/py-venv.sh" sushy-venv 'bcrypt, sushy_tools' 'sushy-tools==2.2.0' bcrypt)
[ -x "$VENV/bin/sushy-emulator" ] || { echo "sushy-emulator missing in $VENV" >&2; exit 2; }
echo "$VENV"
