#!/usr/bin/env bash
# The project's one test command: installs/builds the test environment if needed (cached under
# ~/.cache/capstan), then runs every test of the workspace against real etcd + kube-apiserver.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(hack/testenv.sh)"
export CAPSTAN_ETCD CAPSTAN_KUBE_APISERVER
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --all-features --profile ci "$@"
else
  exec cargo test --workspace --all-features "$@"
fi
