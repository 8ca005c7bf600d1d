#!/usr/bin/env bash
# down.sh - stop the cluster that up.sh started, and nothing else: daemons are found through the
# pid files under $BASE and only signalled if the pid still belongs to a process of that name.
# Idempotent. State (job ids, accounting DB, munge key) is kept so `up.sh` resumes quickly;
# `down.sh --purge` deletes it (the next up.sh builds a fresh cluster).
set -uo pipefail   # no -e: one daemon failing to stop must not leave the others running

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=${SLURM_BASE:-$REPO/.slurm}
export SLURM_CONF=$BASE/etc/slurm.conf
say() { echo "slurm-down: $*" >&2; }

running() {  # running PIDFILE NAME (as in up.sh)
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}
any_alive() { local p; for p; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
stop() {  # stop PIDFILE:NAME...: TERM them all, then wait (each takes ~2 s to exit; in parallel
          # that is ~2 s per group), KILL whatever ignores TERM for 20 s
  local item pids=() names=()
  for item; do
    if running "${item%:*}" "${item#*:}"; then pids+=("$(cat "${item%:*}")"); names+=("${item#*:}"); fi
    rm -f "${item%:*}"
  done
  ((${#pids[@]})) || return 0
  kill "${pids[@]}" 2>/dev/null
  for _ in $(seq 200); do any_alive "${pids[@]}" || break; sleep 0.1; done
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[i]}" 2>/dev/null; then say "${names[i]} (${pids[i]}) ignored SIGTERM, killing"; kill -9 "${pids[i]}"; fi
    say "stopped ${names[i]} (${pids[i]})"
  done
}

# Cancel our jobs while slurmd still runs, so it reaps their processes: a job step left behind
# by a stopped slurmd would keep running (and hold CPUs) with nobody to stop it.
if running "$BASE/run/slurmctld.pid" slurmctld; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u)
  if [ -n "$jobs" ]; then
    say "cancelling jobs: $(echo $jobs)"
    # shellcheck disable=SC2086
    scancel --quiet $jobs 2>/dev/null
    for _ in $(seq 75); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

# in dependency order: slurmctld flushes pending accounting records to slurmdbd on exit, slurmdbd
# needs MariaDB and munged until it has stopped
stop "$BASE/run/slurmd.pid:slurmd" "$BASE/run/slurmctld.pid:slurmctld"
stop "$BASE/run/slurmdbd.pid:slurmdbd"
stop "$BASE/db/mysqld.pid:mariadbd" "$BASE/munge/munged.pid:munged"
rm -f "$BASE/slurm.env"   # its presence means "cluster is up" to anyone sourcing it

if [ "${1:-}" = --purge ]; then
  rm -rf "$BASE"/{state,db,log,run,etc,fakegpu}
  say "purged $BASE"
fi
exit 0
