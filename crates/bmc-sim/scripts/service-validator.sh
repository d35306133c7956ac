#!/usr/bin/env bash
# Runs the DMTF Redfish Service Validator against the simulator's built-in template and fails if
# it reports any FAIL.
#
# Usage: crates/bmc-sim/scripts/service-validator.sh [path/to/metal-bmc-sim]
#   Without a binary path the debug binary is built with `cargo build -p metal-bmc-sim`.
# Environment:
#   METAL_CACHE_DIR        cache for the validator's virtualenv (default ~/.cache/metal)
#   METAL_SHARED_DIR       the shared directory with fixtures/redfish-schemas/csdl (default ../shared)
#   RF_VALIDATOR_VERSION   redfish-service-validator version from PyPI (default 3.1.8)
#   SIM_TEMPLATE           template to validate (default: the built-in `default`)
#   SIM_BASE_ADDRESS       first BMC address (default 127.77.0.1)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache=${METAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/metal}
version=${RF_VALIDATOR_VERSION:-3.1.8}
venv=$cache/rfval-$version
shared=${METAL_SHARED_DIR:-$repo/../shared}
schemas=$shared/fixtures/redfish-schemas/csdl
template=${SIM_TEMPLATE:-default}
base=${SIM_BASE_ADDRESS:-127.77.0.1}

if [ ! -d "$schemas" ]; then
  echo "service-validator: CSDL schemas not found at $schemas (set METAL_SHARED_DIR)" >&2
  exit 2
fi

if [ ! -x "$venv/bin/rf_service_validator" ]; then
  echo "service-validator: installing redfish-service-validator $version into $venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "redfish-service-validator==$version"
fi

bin=${1:-}
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --quiet -p metal-bmc-sim)
  bin=$repo/target/debug/metal-bmc-sim
fi

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

password=validator-password
"$bin" --count 2 --template "$template" --base-address "$base" --port 0 --no-tls \
  --password "$password" --admin-address none --state-dir "$work/state" \
  --knobs '{task_duration_ms: 3600000, power_delay_ms: 100}' >"$work/sim.log" 2>&1 &
pid=$!

address=
for _ in $(seq 1 100); do
  address=$(sed -n 's/^  \[1\] \(http[^ ]*\) .*/\1/p' "$work/sim.log" | head -n 1)
  [ -n "$address" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then cat "$work/sim.log" >&2; exit 1; fi
  sleep 0.1
done
if [ -z "$address" ]; then
  echo "service-validator: the simulator did not start" >&2
  cat "$work/sim.log" >&2
  exit 1
fi

# Give the dynamic resources something to show: a session, a subscription, an account, a running
# task, inserted virtual media, pending BIOS settings and a powered-on system.
python3 - "$address" "$password" <<'PY'
import base64, http.server, json, sys, threading, urllib.error, urllib.request
base, password = sys.argv[1], sys.argv[2]
auth = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
class Image(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "4"); self.end_headers(); self.wfile.write(b"ISO!")
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), Image)
threading.Thread(target=srv.serve_forever, daemon=True).start()
steps = [
    ("POST", "/redfish/v1/SessionService/Sessions", {"UserName": "admin", "Password": password}, 201),
    ("POST", "/redfish/v1/EventService/Subscriptions", {"Destination": "http://127.0.0.1:9/events", "Protocol": "Redfish", "Context": "validator"}, 201),
    ("POST", "/redfish/v1/AccountService/Accounts", {"UserName": "operator", "Password": "operator-password", "RoleId": "Operator"}, 201),
    ("POST", "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate", {"ImageURI": "http://127.0.0.1/fw/bios-2.5.0.bin"}, 202),
    ("POST", "/redfish/v1/Systems/1/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia", {"Image": f"http://127.0.0.1:{srv.server_port}/boot.iso"}, 204),
    ("PATCH", "/redfish/v1/Systems/1/Bios/Settings", {"Attributes": {"BootMode": "Bios"}}, 200),
    ("POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", {"ResetType": "On"}, 204),
]
for method, path, body, want in steps:
    got = call(method, path, body)
    if got != want:
        print(f"service-validator: seeding {method} {path} answered {got} (expected {want}); continuing", file=sys.stderr)
srv.shutdown()
PY

echo "service-validator: validating $address (template $template)"
"$venv/bin/rf_service_validator" -r "$address" -u admin -p "$password" --authtype Basic \
  --logdir "$work/logs" --schema_directory "$schemas" >"$work/validator.out" 2>&1 || true

# The summary table: | PASS | WARN | FAIL | NOT TESTED | followed by a row of numbers.
row=$(grep -A 2 'PASS.*WARN.*FAIL' "$work/validator.out" | grep -E '^\|[[:space:]]*[0-9]' | head -n 1 || true)
if [ -z "$row" ]; then
  echo "service-validator: no summary in the validator's output" >&2
  tail -n 40 "$work/validator.out" >&2
  exit 1
fi
read -r pass warn fail untested <<<"$(echo "$row" | tr -d '|' | xargs)"
resources=$(grep -c '^Validating ' "$work/validator.out" || true)
echo "service-validator: $resources resources: PASS $pass, WARN $warn, FAIL $fail, NOT TESTED $untested"
if [ "$fail" != "0" ]; then
  grep -h -E ' - (ERROR|FAIL) ' "$work"/logs/*/RedfishServiceValidatorDebug_*.log | head -n 50 >&2 || true
  exit 1
fi
