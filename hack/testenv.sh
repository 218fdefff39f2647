#!/usr/bin/env bash
# Installs what Capstan's tests need on a fresh Debian bookworm machine, caching the expensive
# parts outside the repository so that only the first run pays:
#   - etcd (Debian's etcd-server)
#   - kube-apiserver 1.20.2, built from Debian's kubernetes source package with the reflect2 fix
#   - the vcsim helper (VMware's vCenter simulator built from Debian's govmomi package)
#   - xorriso/isoinfo for independent checks of the NoCloud ISO images
# Prints `export` lines for the environment variables the tests read (eval "$(hack/testenv.sh)").
set -euo pipefail

CACHE="${CAPSTAN_CACHE:-$HOME/.cache/capstan}"
K8S_VERSION=1.20.2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$CACHE"

log() { echo "testenv: $*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated = 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq >&2
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ensure_deb_src() {
  local f=/etc/apt/sources.list.d/capstan-deb-src.sources
  [ -f "$f" ] && return 0
  log "adding a deb-src entry for bookworm"
  $SUDO tee "$f" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_updated=0
}

build_apiserver() {
  local out="$CACHE/kube-apiserver-$K8S_VERSION"
  [ -x "$out" ] && return 0
  ensure_deb_src
  apt_install golang-go rsync jq golang-github-modern-go-reflect2-dev dpkg-dev
  if [ $apt_updated = 0 ]; then $SUDO apt-get update -qq >&2; apt_updated=1; fi
  local work="$CACHE/build-k8s"
  rm -rf "$work"; mkdir -p "$work"
  log "downloading Debian's kubernetes source package"
  (cd "$work" && apt-get source --download-only kubernetes >&2)
  local orig
  orig=$(ls "$work"/kubernetes_*.orig.tar.* | head -1)
  mkdir -p "$work/src"
  tar -xf "$orig" -C "$work/src" --strip-components=1
  log "replacing vendored reflect2 with Debian's 1.0.2 (1.0.1 crashes on Go >= 1.18)"
  local r2="$work/src/vendor/github.com/modern-go/reflect2"
  find "$r2" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
  for f in /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s; do
    [ -e "$f" ] || continue
    case "$f" in *_test.go) continue ;; esac
    cp "$f" "$r2/"
  done
  mkdir -p "$work/src/.go/src/k8s.io" "$work/home"
  ln -sfn "$work/src" "$work/src/.go/src/k8s.io/kubernetes"
  log "building kube-apiserver $K8S_VERSION (about 8 minutes on 2 cores, once)"
  (cd "$work/src/.go/src/k8s.io/kubernetes" && \
    GOPATH="$work/src/.go" CGO_ENABLED=0 HOME="$work/home" GOFLAGS=-mod=vendor \
    make WHAT=cmd/kube-apiserver >&2)
  cp "$work/src/_output/bin/kube-apiserver" "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$work"
}

build_vcsim() {
  local out="$CACHE/vcsim"
  local src="$HERE/vcsim/main.go"
  local stamp="$CACHE/vcsim.sha256"
  local want
  want=$(sha256sum "$src" | cut -d' ' -f1)
  if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  apt_install golang-go golang-github-vmware-govmomi-dev
  log "building vcsim helper"
  local work; work=$(mktemp -d)
  cp "$src" "$work/main.go"
  (cd "$work" && GOPATH=/usr/share/gocode GO111MODULE=off HOME="$work" GOCACHE="$CACHE/gocache" go build -o "$out.tmp" . >&2)
  mv "$out.tmp" "$out"
  echo "$want" > "$stamp"
  rm -rf "$work"
}

apt_install etcd-server xorriso genisoimage openssl ca-certificates pkg-config libssl-dev
build_apiserver
if [ -f "$HERE/vcsim/main.go" ]; then build_vcsim; fi

ETCD_BIN=$(command -v etcd || echo /usr/bin/etcd)
echo "export CAPSTAN_ETCD=$ETCD_BIN"
echo "export CAPSTAN_KUBE_APISERVER=$CACHE/kube-apiserver-$K8S_VERSION"
if [ -x "$CACHE/vcsim" ]; then echo "export CAPSTAN_VCSIM=$CACHE/vcsim"; fi
