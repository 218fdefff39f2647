#!/usr/bin/env bash
# Figures for `capstan up`: wall time, time from apply to all nodes registered (printed by `up`),
# and the peak resident memory of the whole process tree (every process whose command line
# names the run's state directory: `up`, its background process, both etcds and API servers),
# sampled every 200 ms. Usage: hack/measure-up.sh [path/to/capstan] [extra `up` flags...]
set -euo pipefail
BIN="${1:-target/release/capstan}"; shift || true
STATE="$(mktemp -d /tmp/capstan-measure-XXXXXX)"
peak=0
sample() {
  local total=0 pid rss
  for pid in $(grep -l -a -- "$STATE" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${rss:-0}))
  done
  echo "$total"
}
start=$(date +%s.%N)
"$BIN" up --state-dir "$STATE" "$@" > "$STATE.out" 2>&1 &
up_pid=$!
while kill -0 "$up_pid" 2>/dev/null; do
  now=$(sample); [ "$now" -gt "$peak" ] && peak=$now
  sleep 0.2
done
wait "$up_pid" || { cat "$STATE.out"; exit 1; }
end=$(date +%s.%N)
cat "$STATE.out"
echo "measure: wall time $(awk "BEGIN {printf \"%.1f\", $end - $start}") s, peak RSS of the process tree $((peak / 1024)) MiB"
"$BIN" down --state-dir "$STATE" >/dev/null
rm -f "$STATE.out"
