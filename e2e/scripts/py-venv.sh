#!/usr/bin/env bash
# Creates (or reuses) a Python virtualenv under ${METAL_CACHE:-~/.cache/metal}/<name> with the given
# pip requirements, and prints its path on stdout (progress goes to stderr). Tests call it through
# small wrappers (crates/redfish/scripts/sushy-venv.sh, crates/api/scripts/pyyaml-venv.sh).
#
#   py-venv.sh <name> <python-import-check> <requirement>...
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: py-venv.sh <name> <import-check> <requirement>..." >&2; exit 2; }
name=$1; check=$2; shift 2
CACHE="${METAL_CACHE:-$HOME/.cache/metal}"
VENV="$CACHE/$name"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import $check" 2>/dev/null; then
  echo "$VENV"
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 2; }
mkdir -p "$CACHE"
rm -rf "$VENV"
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
"$VENV/bin/python" -c "import $check" >&2
echo "$VENV"
