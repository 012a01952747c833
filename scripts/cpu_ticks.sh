#!/usr/bin/env bash
# cpu_ticks.sh PG_PID GATEWAY_PID SELF_PID: one line "pg gateway self busy idle" of cumulative
# clock ticks (user + system) read from /proc: the postmaster PG_PID and its children (live and
# exited), the gateway, the caller, and the whole machine (busy = user nice system irq softirq steal; idle =
# idle iowait). Used by edge-functions/bench/gateway_load.ts (Deno reads /proc only with
# --allow-all).
set -euo pipefail
pg_pid="$1" gw_pid="$2" self_pid="$3"
for stat in /proc/[0-9]*/stat; do
  # comm may hold spaces: the fields after the last ')' are state ppid ... utime(12) stime(13).
  line="$(cat "$stat" 2>/dev/null)" || continue
  pid="${stat#/proc/}"
  printf '%s %s\n' "${pid%/stat}" "${line##*) }"
done | awk -v pg="$pg_pid" -v gw="$gw_pid" -v me="$self_pid" '
  { t = $13 + $14 }
  # The postmaster also carries the time of the children it reaped (cutime + cstime): backends
  # that exited meanwhile still count.
  $1 == pg { pgt += t + $15 + $16 }
  $3 == pg { pgt += t }
  $1 == gw { gwt = t }
  $1 == me { met = t }
  END {
    getline cpu < "/proc/stat"
    split(cpu, f, " ")
    printf "%d %d %d %d %d\n", pgt, gwt, met, f[2] + f[3] + f[4] + f[7] + f[8] + f[9], f[5] + f[6]
  }'
