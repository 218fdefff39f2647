#!/usr/bin/env bash
# Installs and builds Capstan's test bed on a fresh Debian machine, caching what it builds outside
# the repository (~/.cache/capstan, or $CAPSTAN_CACHE) so that only the first run pays:
#   - etcd (Debian's etcd-server 3.4) and the ISO tools (xorriso, genisoimage)
#   - kube-apiserver of every version under hack/peers/kube-apiserver-v1.*  (k8s.io/kubernetes)
#   - Cluster API v1.14: core, KubeadmControlPlane and CABPK managers, clusterctl
#   - vcsim (govmomi's vCenter simulator), our govmomi clone loop for the vSphere benchmark, and
#     ignition-validate (Ignition's own validator)
#   - cargo-nextest, the test runner hack/test.sh uses
# Every upstream program comes from its published Go module through a wrapper module of ours in
# hack/peers (go.mod + go.sum committed). Each is built once per version into
# $CACHE/<name>-<version>. One progress line per step goes to stderr with its elapsed time; the
# build output goes to a log file whose path is printed when a step fails.
# Prints `export` lines for the variables the tests read:  eval "$(hack/testenv.sh)"
#   usage: hack/testenv.sh [all|plane]   (plane: etcd + the default kube-apiserver only, for `capstan up`)
set -euo pipefail

WHAT="${1:-all}"
CACHE="${CAPSTAN_CACHE:-$HOME/.cache/capstan}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS="$HERE/peers"
# The kube-apiserver version the tests and `capstan up` use unless told otherwise.
DEFAULT_KUBE_MINOR=1.34
NEXTEST_VERSION=0.9.151
mkdir -p "$CACHE/logs"
LOG="$CACHE/logs/testenv-$(date -u +%Y%m%dT%H%M%SZ)-$$.log"
: >"$LOG"

step_started=0
step() { step_started=$(date +%s); printf 'testenv: %s ...' "$*" >&2; }
done_step() { printf ' done (%ss)\n' "$(( $(date +%s) - step_started ))" >&2; }
fail() { printf '\ntestenv: %s\ntestenv: full output in %s\n' "$*" "$LOG" >&2; tail -n 20 "$LOG" >&2; exit 1; }
run() { "$@" >>"$LOG" 2>&1; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "installing ${missing[*]} (Debian packages)"
  run $SUDO apt-get update -qq || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive run $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || fail "apt-get install ${missing[*]} failed"
  done_step
}

need_go() {
  command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || fail "Go 1.26 is needed to build the test bed and is not installed"
  command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
}

# The version a wrapper module pins: `require MODULE vX.Y.Z` in its go.mod.
pinned() { sed -n -E "s#^(require)?[[:space:]]*$2 (v[^ ]+)( // indirect)?\$#\2#p" "$1/go.mod" | head -1; }

# go_build MODULE_DIR OUT PACKAGE [LDFLAGS]: one program of a wrapper module, once per output name.
go_build() {
  local dir=$1 out=$2 pkg=$3 ldflags=${4:-}
  [ -x "$out" ] && return 0
  need_go
  step "building $(basename "$out") from $pkg"
  local mark; mark=$(wc -l <"$LOG")
  if ! (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly run go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg"); then
    # A module the proxy does not serve: name it on one line (go's own error line).
    local missing
    missing=$(tail -n +"$((mark + 1))" "$LOG" | grep -m1 -E 'not found|not available|403 Forbidden|404 Not Found|unknown revision|invalid version' || true)
    [ -n "$missing" ] && fail "$pkg: a module is not served by the Go module proxy: $missing"
    fail "building $pkg failed"
  fi
  mv "$out.tmp" "$out"
  done_step
}

# Sets KUBE_APISERVER_BIN to the binary built from the wrapper module in $1.
kube_apiserver() {
  local dir=$1 v
  v=$(pinned "$dir" k8s.io/kubernetes)
  [ -n "$v" ] || fail "$dir/go.mod pins no k8s.io/kubernetes version"
  local minor=${v#v1.}; minor=${minor%%.*}
  go_build "$dir" "$CACHE/kube-apiserver-$v" k8s.io/kubernetes/cmd/kube-apiserver \
    "-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  KUBE_APISERVER_BIN="$CACHE/kube-apiserver-$v"
}

cluster_api() {
  local dir="$PEERS/cluster-api" v
  v=$(pinned "$dir" sigs.k8s.io/cluster-api)
  local minor=${v#v1.}; minor=${minor%%.*}
  local ld="-X sigs.k8s.io/cluster-api/version.gitVersion=$v -X sigs.k8s.io/cluster-api/version.gitMajor=1 -X sigs.k8s.io/cluster-api/version.gitMinor=$minor -X sigs.k8s.io/cluster-api/version.gitTreeState=clean"
  go_build "$dir" "$CACHE/capi-core-manager-$v" sigs.k8s.io/cluster-api/core "$ld"
  go_build "$dir" "$CACHE/capi-kubeadm-control-plane-manager-$v" sigs.k8s.io/cluster-api/controlplane/kubeadm "$ld"
  go_build "$dir" "$CACHE/capi-kubeadm-bootstrap-manager-$v" sigs.k8s.io/cluster-api/bootstrap/kubeadm "$ld"
  go_build "$dir" "$CACHE/clusterctl-$v" sigs.k8s.io/cluster-api/cmd/clusterctl "$ld"
  echo "export CAPSTAN_CAPI_VERSION=$v"
  echo "export CAPSTAN_CAPI_CORE_MANAGER=$CACHE/capi-core-manager-$v"
  echo "export CAPSTAN_KCP_MANAGER=$CACHE/capi-kubeadm-control-plane-manager-$v"
  echo "export CAPSTAN_CABPK_MANAGER=$CACHE/capi-kubeadm-bootstrap-manager-$v"
  echo "export CAPSTAN_CLUSTERCTL=$CACHE/clusterctl-$v"
  # CABPK's own Ignition renderer behind a small program of ours (the oracle for spec 2.3.0);
  # the name carries the program's hash so an edit rebuilds it.
  local oracle="$CACHE/cabpk-ignition-$v-$(sha256sum "$dir/cabpk-ignition/main.go" | cut -c1-12)"
  go_build "$dir" "$oracle" ./cabpk-ignition
  echo "export CAPSTAN_CABPK_IGNITION=$oracle"
  # The module's own config/ trees (CRDs, RBAC, webhooks), for tests that install upstream components.
  local module
  module=$(cd "$dir" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' sigs.k8s.io/cluster-api) || fail "go list sigs.k8s.io/cluster-api failed"
  echo "export CAPSTAN_CAPI_MODULE=$module"
}

small_peers() {
  local v
  v=$(pinned "$PEERS/vcsim" github.com/vmware/govmomi)
  go_build "$PEERS/vcsim" "$CACHE/vcsim-$v" github.com/vmware/govmomi/vcsim
  echo "export CAPSTAN_VCSIM=$CACHE/vcsim-$v"
  # The vSphere benchmark's physical limit: a plain govmomi clone loop of ours (hash-named, as above).
  local loop="$CACHE/clone-loop-$v-$(sha256sum "$PEERS/vcsim/clone-loop/main.go" | cut -c1-12)"
  go_build "$PEERS/vcsim" "$loop" ./clone-loop
  echo "export CAPSTAN_CLONE_LOOP=$loop"
  v=$(pinned "$PEERS/ignition" github.com/coreos/ignition/v2)
  go_build "$PEERS/ignition" "$CACHE/ignition-validate-$v" github.com/coreos/ignition/v2/validate
  echo "export CAPSTAN_IGNITION_VALIDATE=$CACHE/ignition-validate-$v"
}

nextest() {
  local root="$CACHE/cargo-nextest-$NEXTEST_VERSION"
  if [ ! -x "$root/bin/cargo-nextest" ]; then
    step "building cargo-nextest $NEXTEST_VERSION (cargo install)"
    run cargo install --locked --quiet --root "$root.tmp" --version "$NEXTEST_VERSION" cargo-nextest \
      || fail "cargo install cargo-nextest $NEXTEST_VERSION failed"
    rm -rf "$root"; mv "$root.tmp" "$root"
    done_step
  fi
  echo "export CAPSTAN_NEXTEST=$root/bin/cargo-nextest"
}

case "$WHAT" in
  all | plane) ;;
  *) echo "usage: $0 [all|plane]" >&2; exit 2 ;;
esac

apt_install etcd-server openssl ca-certificates
if [ "$WHAT" = all ]; then apt_install xorriso genisoimage pkg-config libssl-dev; fi
echo "export CAPSTAN_ETCD=$(command -v etcd || echo /usr/bin/etcd)"

default_dir="$PEERS/kube-apiserver-v$DEFAULT_KUBE_MINOR"
[ -f "$default_dir/go.mod" ] || fail "no wrapper module $default_dir"
kube_apiserver "$default_dir"
echo "export CAPSTAN_KUBE_APISERVER=$KUBE_APISERVER_BIN"
echo "export CAPSTAN_CACHE=$CACHE"
if [ "$WHAT" = all ]; then
  for dir in "$PEERS"/kube-apiserver-v1.*; do
    [ "$dir" = "$default_dir" ] && continue
    kube_apiserver "$dir"
  done
  cluster_api
  small_peers
  nextest
fi
rm -f "$LOG"
