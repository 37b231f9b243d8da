#!/usr/bin/env bash
# Checks that an experiment folder holds every file a run must produce, that
# the CSVs parse and the figures are real PNG/SVG files.
set -euo pipefail
dir=$1
fail() { echo "check-results: $dir: $*" >&2; exit 1; }
for f in runs.csv summary.csv summary.md meta.json; do
  [ -s "$dir/$f" ] || fail "missing or empty $f"
done
head -1 "$dir/summary.csv" | grep -qx 'metric,unit,n,mean,stddev,ci95_low,ci95_high,min,median,max,paper,ratio' \
  || fail "summary.csv has the wrong header"
[ "$(wc -l < "$dir/runs.csv")" -ge 2 ] || fail "runs.csv has no runs"
python3 -c "import json,sys; m=json.load(open('$dir/meta.json')); sys.exit(1 if m.get('failure') else 0)" \
  || fail "meta.json records a failure"
n=0
for png in "$dir"/*.png; do
  [ -e "$png" ] || continue
  head -c 8 "$png" | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a' || fail "$png is not a PNG"
  svg=${png%.png}.svg
  grep -q '<svg' "$svg" || fail "$svg is not an SVG"
  n=$((n+1))
done
[ "$n" -ge 1 ] || fail "no figures"
echo "check-results: $dir: ok ($n figures)"
