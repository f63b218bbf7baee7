#!/usr/bin/env bash
# Every reproduction's full setting, one process per paper in parallel (one torch thread each),
# then the summary table. Writes OUT_DIR/NAME/{figure.png,results.json,index.html} and a log.
# Usage: bash benchmarks/papers_full.sh OUT_DIR [JOBS]   (PAPERS="a b" runs only those)
set -uo pipefail
out=${1:?usage: papers_full.sh OUT_DIR [JOBS]}
jobs=${2:-4}
mkdir -p "$out"
names=${PAPERS:-$(python3 -c "from initlab.papers.catalog import PAPERS; print(' '.join(PAPERS))")}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
printf '%s\n' $names | xargs -P "$jobs" -I{} sh -c \
  'python3 -m initlab.cli reproduce {} --out "$0/{}" --force > "$0/{}.log" 2>&1; echo "{}: exit $?"' "$out"
python3 - "$out" <<'PY'
import json, pathlib, sys
rows = []
for path in sorted(pathlib.Path(sys.argv[1]).glob("*/results.json")):
    r = json.loads(path.read_text())
    passed = sum(c["passed"] for c in r["checks"])
    rows.append(f"{r['paper']['name']:16s} {passed}/{len(r['checks'])} checks  {r['verdict']:15s} {r['seconds']:.0f} s")
print("\n".join(rows))
PY
