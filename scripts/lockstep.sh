#!/usr/bin/env bash
# fsync-bound in lockstep pairs, quickly (the full measurement is `cargo xtask bench`): PAIRS
# pairs of an untraced and a traced `fsync-trace-workload fsync-bound --lockstep` run passing a
# byte through two FIFOs (one record each in turn; who starts alternates), each reporting the
# time of its own records. Prints the median traced/untraced ratio, with min and max.
# Usage (root): scripts/lockstep.sh PAIRS RECORDS [tracer args...]; B=DIR picks the binaries
# (default target/release). Alternate builds run by run when comparing them on a shared machine.
set -euo pipefail
B=${B:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
pairs=$1
rec=$2
shift 2
w=$(mktemp -d /var/tmp/lockstep.XXXXXX)
trap 'rm -rf "$w"' EXIT
ratios=()
for i in $(seq 1 "$pairs"); do
  rm -rf "$w"/*
  mkdir -p "$w/u" "$w/t"
  mkfifo "$w/u2t" "$w/t2u"
  uf=()
  tf=()
  if [ $((i % 2)) = 0 ]; then uf=(--lockstep-first); else tf=(--lockstep-first); fi
  "$B/fsync-trace-workload" fsync-bound "$w/u" --records "$rec" --lockstep "$w/t2u" "$w/u2t" \
    --report-elapsed "${uf[@]}" 2>"$w/ue" &
  up=$!
  "$B/fsync-trace" "$@" -o /dev/null -- "$B/fsync-trace-workload" fsync-bound "$w/t" \
    --records "$rec" --lockstep "$w/u2t" "$w/t2u" --report-elapsed "${tf[@]}" 2>"$w/te"
  wait "$up"
  u=$(grep -o 'elapsed_ns=[0-9]*' "$w/ue" | cut -d= -f2)
  t=$(grep -o 'elapsed_ns=[0-9]*' "$w/te" | cut -d= -f2)
  ratios+=("$(python3 -c "print($t/$u)")")
done
python3 -c "
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
print('median %.3f  min %.3f max %.3f  n=%d' % (statistics.median(r), min(r), max(r), len(r)))" "${ratios[@]}"
