#!/usr/bin/env bash
# A virtualenv with PyYAML, a YAML 1.1 reader like kubectl's, for crates/api/tests/yaml11.rs.
exec "$(dirname "$0")/../../../e2e/scripts/py-venv.sh" pyyaml-venv yaml 'PyYAML==6.0.3'
