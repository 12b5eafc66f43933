"""One line of bench/fio_extend.sh's table from fio's JSON and
/usr/bin/time's "%S %U %c %w" (system s, user s, involuntary and
voluntary context switches)."""

import json
import sys

rnd, case, out, timing = sys.argv[1:5]
job = json.load(open(out))["jobs"][0]
w, sync = job["write"], job["sync"]
writes = w["total_ios"]
rate = writes / (job["job_runtime"] / 1000)
sys_s, usr_s, invol, vol = (float(x) for x in open(timing).read().split())
pct = lambda d, p: d["percentile"].get(p, 0) / 1000  # ns to us
print(f"{rnd} {case} {rate:,.0f} {pct(w['clat_ns'], '50.000000'):.0f} {pct(w['clat_ns'], '99.000000'):.0f} "
      f"{pct(sync['lat_ns'], '50.000000'):.0f} {pct(sync['lat_ns'], '99.000000'):.0f} "
      f"{(sys_s + usr_s) / writes * 1000:.3f} {(invol + vol) / writes:.2f}")
