#!/usr/bin/env bash
# The project's one test command: installs/builds the test bed if needed (cached under
# ~/.cache/capstan, see hack/testenv.sh), then runs every test of the workspace with cargo-nextest
# against real etcd, kube-apiserver 1.34 and the upstream peers.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(hack/testenv.sh)"
export PATH="$(dirname "$CAPSTAN_NEXTEST"):$PATH"
exec cargo nextest run --workspace --all-features --profile ci "$@"
