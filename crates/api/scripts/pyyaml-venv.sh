#!/usr/bin/env bash
# Creates (or reuses) a Python virtualenv with PyYAML, a YAML 1.1 reader like kubectl's, for
# crates/api/tests/yaml11.rs. Prints the venv path on stdout; progress goes to stderr.
# Location: ${METAL_CACHE:-~/.cache/metal}/pyyaml-venv
set -euo pipefail
CACHE="${METAL_CACHE:-$HOME/.cache/metal}"
VENV="$CACHE/pyyaml-venv"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import yaml' 2>/dev/null; then
  echo "$VENV"
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 2; }
mkdir -p "$CACHE"
rm -rf "$VENV"
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check 'PyYAML==6.0.3' >&2
"$VENV/bin/python" -c 'import yaml' >&2
echo "$VENV"
