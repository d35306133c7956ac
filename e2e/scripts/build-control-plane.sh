#!/usr/bin/env bash
# Builds the real Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kubectl) and etcd from Go modules, caching the binaries outside the repository,
# keyed by version. Prints the directory holding the binaries on its last line.
#
# Environment:
#   K8S_VERSION   (default v1.37.2)
#   ETCD_VERSION  (default v3.6.16)
#   METAL_CACHE   (default ${XDG_CACHE_HOME:-$HOME/.cache}/metal)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE="${METAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metal}"
# Bump RECIPE when the way the binaries are built changes, so stale caches are rebuilt.
RECIPE=2
OUT="$CACHE/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-r${RECIPE}"
STAGING_VERSION="v0.${K8S_VERSION#v1.}"

log() { echo "build-control-plane: $*" >&2; }

if [[ -x "$OUT/kube-apiserver" && -x "$OUT/kube-controller-manager" && -x "$OUT/kubectl" && -x "$OUT/etcd" ]]; then
  log "cached in $OUT"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { log "go is not installed"; exit 1; }
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
if [[ "$GOTOOLCHAIN" == "local" ]]; then export GOTOOLCHAIN=go1.27.3; fi

mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/metal-cp-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

build_k8s() {
  local dir="$WORK/k8s"
  mkdir -p "$dir" && cd "$dir"
  log "downloading k8s.io/kubernetes@$K8S_VERSION"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  [[ -f "$gomod" ]] || { log "no go.mod for k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  local gover
  gover="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod" | head -1)"
  {
    echo "module metal.local/controlplane"
    echo
    echo "go ${gover}"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    grep -E '^\s*k8s\.io/[a-z0-9-]+ v0\.0\.0(\s|$)' "$gomod" | awk -v v="$STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}' | sort -u
    echo ")"
  } > go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  log "resolving module graph"
  go mod tidy -e >/dev/null 2>&1 || true
  go get "k8s.io/kubernetes@$K8S_VERSION" >&2
  for cmd in kube-apiserver kube-controller-manager kubectl; do
    log "building $cmd"
    local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
    local x="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    go build -trimpath -ldflags="-s -w $x" -o "$OUT/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2
    mv "$OUT/$cmd.tmp" "$OUT/$cmd"
  done
}

build_etcd() {
  local dir="$WORK/etcd"
  mkdir -p "$dir" && cd "$dir"
  cat > go.mod <<GOMOD
module metal.local/etcd

go 1.24
GOMOD
  log "downloading go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  log "building etcd"
  go build -trimpath -ldflags="-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  mv "$OUT/etcd.tmp" "$OUT/etcd"
}

start=$(date +%s)
[[ -x "$OUT/etcd" ]] || build_etcd
[[ -x "$OUT/kube-apiserver" && -x "$OUT/kube-controller-manager" && -x "$OUT/kubectl" ]] || build_k8s
log "built in $(( $(date +%s) - start ))s into $OUT"
echo "$OUT"
