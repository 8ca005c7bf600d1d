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
stop() {  # stop PIDFILE NAME: TERM, up to 20 s grace, then KILL
  if running "$1" "$2"; then
    local pid; pid=$(cat "$1")
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then say "$2 ($pid) ignored SIGTERM, killing"; kill -9 "$pid"; fi
    say "stopped $2 ($pid)"
  fi
  rm -f "$1"
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

# clients first, storage last: slurmctld flushes pending accounting records to slurmdbd on exit
stop "$BASE/run/slurmd.pid" slurmd
stop "$BASE/run/slurmctld.pid" slurmctld
stop "$BASE/run/slurmdbd.pid" slurmdbd
stop "$BASE/db/mysqld.pid" mariadbd
stop "$BASE/munge/munged.pid" munged
rm -f "$BASE/slurm.env"   # its presence means "cluster is up" to anyone sourcing it

if [ "${1:-}" = --purge ]; then
  rm -rf "$BASE"/{state,db,log,run,etc,fakegpu}
  say "purged $BASE"
fi
exit 0
