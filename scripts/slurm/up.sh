#!/usr/bin/env bash
# up.sh - bring up the project's own single-node SLURM cluster (Debian, as root, no systemd).
#
# Idempotent: a second run with the same settings only checks that everything answers; a run
# with changed settings rewrites the config and restarts slurmctld/slurmd. All state (config,
# munge key, spool, logs, pid files, MariaDB data) lives under $BASE, so `down.sh` can stop
# exactly what was started here and nothing else on the machine.
#
# Settings (environment):
#   SLURM_BASE=$REPO/.slurm   state dir (git-ignored)
#   SLURM_ACCOUNTING=1        MariaDB + slurmdbd: `sacct` works, so submitit notices cancelled or
#                             killed jobs (without it job.result() waits forever on them); 0 = off
#   SLURM_NODE_CPUS=8         CPUs the node advertises (more than the box has, so several 1-CPU
#                             jobs run at once on a 2-core machine)
#   SLURM_FAKE_GPUS=0         n>0: gres gpu:n on dummy char devices (jobs get CUDA_VISIBLE_DEVICES)
#   SLURM_PARTITION=debug     partition name (conf/cluster/local_slurm.yaml expects "debug")
#   SLURM_MAX_TIME=1-00:00:00 partition MaxTime: longer --time requests are rejected at submission
#   SLURM_START_TIMEOUT=60    seconds to wait for the node to become idle
#   SLURMCTLD_PORT=6817 SLURMD_PORT=6818 SLURMDBD_PORT=6819 SLURM_DB_PORT=3306
# Output: progress on stderr; the last stdout line is `export SLURM_CONF=...` (also in $BASE/slurm.env),
# so `eval "$(bash scripts/slurm/up.sh | tail -1)"` configures the calling shell.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=${SLURM_BASE:-$REPO/.slurm}
ACCOUNTING=${SLURM_ACCOUNTING:-1}
NODE_CPUS=${SLURM_NODE_CPUS:-8}
FAKE_GPUS=${SLURM_FAKE_GPUS:-0}
PARTITION=${SLURM_PARTITION:-debug}
MAX_TIME=${SLURM_MAX_TIME:-1-00:00:00}
TIMEOUT=${SLURM_START_TIMEOUT:-60}
CTLD_PORT=${SLURMCTLD_PORT:-6817} D_PORT=${SLURMD_PORT:-6818}
DBD_PORT=${SLURMDBD_PORT:-6819} DB_PORT=${SLURM_DB_PORT:-3306}
CLUSTER=spikesweep NODE=localhost

ETC=$BASE/etc RUN=$BASE/run LOG=$BASE/log STATE=$BASE/state MUNGE=$BASE/munge DB=$BASE/db
SOCK=$MUNGE/munge.socket
export SLURM_CONF=$ETC/slurm.conf   # every client call below (sinfo, scontrol, sacctmgr) needs it

say() { echo "slurm-up: $*" >&2; }
die() {   # show the tail of every log we have: the cause is almost always in one of them
  say "ERROR: $*"
  for f in "$MUNGE/munged.log" "$DB/mysqld.err" "$LOG/slurmdbd.log" "$LOG/slurmctld.log" "$LOG/slurmd.log"; do
    [ -s "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}
# running PIDFILE NAME: the pid file names a live process called NAME (a stale file whose pid was
# reused by an unrelated process must not count, nor be signalled by down.sh)
running() {
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}
poll() {  # poll SECONDS CMD...: retry CMD every 0.2 s
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do ((SECONDS < end)) || return 1; sleep 0.2; done
}
stop() {  # stop PIDFILE NAME: used when the config changed under a running daemon
  running "$1" "$2" || return 0
  local pid; pid=$(cat "$1"); kill "$pid"
  poll 15 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
}

[ "$(id -u)" = 0 ] || die "must run as root (installs packages, runs the daemons as root)"
# unix socket paths are limited to 107 bytes; a deep checkout path would fail obscurely in munged
((${#SOCK} < 100)) || die "munge socket path too long (${#SOCK} chars): set SLURM_BASE to a shorter dir"
t0=$EPOCHREALTIME
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# --- packages ------------------------------------------------------------------------------
pkgs=(slurmctld slurmd slurm-client munge)
[ "$ACCOUNTING" = 1 ] && pkgs+=(slurmdbd mariadb-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  ti=$EPOCHREALTIME
  # postinst would start the system-wide daemons (default config, /var/run): a policy-rc.d that
  # answers 101 forbids it; only add ours if the image has none, and always remove ours again
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    own_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$own_policy"; chmod 755 "$own_policy"
    trap 'rm -f "$own_policy"' EXIT
  fi
  # the machine is shared: wait for another apt/dpkg run to finish instead of failing on its lock
  apt=(apt-get -qq -o DPkg::Lock::Timeout=300)
  aptlog=$(mktemp)
  "${apt[@]}" update >"$aptlog" 2>&1 || { cat "$aptlog" >&2; die "apt-get update failed"; }
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >"$aptlog" 2>&1 \
    || { tail -n 30 "$aptlog" >&2; die "apt-get install failed"; }
  rm -f "$aptlog"
  [ -n "$own_policy" ] && { rm -f "$own_policy"; trap - EXIT; }
  say "packages installed in $(elapsed "$ti") s"
fi

mkdir -p "$ETC" "$RUN" "$LOG" "$STATE/ctld" "$STATE/d" "$MUNGE"
# munged refuses a socket dir that others may write to, and clients need o+x to reach the socket
chmod 755 "$BASE" "$MUNGE"
# munged also wants o+x on every directory above its socket, which a checkout in a private directory (a
# 700 home, mktemp -d) lacks: the socket then lives in a short root-owned directory of its own under /tmp
open_to_all() {  # every directory from $1 up to / lets others through (x; t is sticky with x)
  local d=$1
  while :; do [[ $(stat -c %A "$d") == *[xt] ]] || return 1; [ "$d" = / ] && return 0; d=$(dirname "$d"); done
}
if ! open_to_all "$MUNGE"; then
  sock_dir=/tmp/spikesweep-munge-$(printf %s "$BASE" | sha1sum | cut -c1-12)
  mkdir -p "$sock_dir" && chmod 755 "$sock_dir"
  [ "$(stat -c %u "$sock_dir")" = 0 ] || die "$sock_dir is not root's: remove it, or set SLURM_BASE to a directory all may enter"
  SOCK=$sock_dir/munge.socket
fi

# --- munge: our own key and socket, so we never depend on (or disturb) a system munged ------------
[ -s "$MUNGE/munge.key" ] || dd if=/dev/urandom of="$MUNGE/munge.key" bs=1024 count=1 status=none
chmod 600 "$MUNGE/munge.key"   # munged refuses a readable key
if ! running "$MUNGE/munged.pid" munged; then
  rm -f "$SOCK" "$SOCK.lock"
  munged --key-file="$MUNGE/munge.key" --socket="$SOCK" --pid-file="$MUNGE/munged.pid" \
    --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed" </dev/null || die "munged did not start"
fi
poll 10 bash -c "munge -n -S '$SOCK' | unmunge -S '$SOCK'" || die "munge credential round trip failed"

# --- config --------------------------------------------------------------------------------
# RealMemory a bit under what slurmd detects: a node that reports less than configured is drained
mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
[ -n "$mem" ] || die "cannot read RealMemory from 'slurmd -C'"
mem=$((mem * 9 / 10))

gres_types="" node_gres=""
if ((FAKE_GPUS > 0)); then
  # gres/gpu only schedules GPUs backed by a File=, and that must be a character device: /dev/null's
  # major/minor (1,3) is harmless to any job that opens it
  mkdir -p "$BASE/fakegpu"
  for ((i = 0; i < FAKE_GPUS; i++)); do
    [ -c "$BASE/fakegpu/nvidia$i" ] || mknod "$BASE/fakegpu/nvidia$i" c 1 3 || die "mknod failed"
  done
  gres_types="GresTypes=gpu" node_gres="Gres=gpu:$FAKE_GPUS"
  echo "NodeName=$NODE Name=gpu File=$BASE/fakegpu/nvidia[0-$((FAKE_GPUS - 1))]" > "$ETC/gres.conf.new"
else
  : > "$ETC/gres.conf.new"
fi

if [ "$ACCOUNTING" = 1 ]; then
  # AccountingStoragePass names the munge socket for the slurmctld->slurmdbd link (else the
  # system default socket, which does not exist or has another key)
  acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$SOCK
JobAcctGatherType=jobacct_gather/linux"
else
  acct="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

cat > "$ETC/slurm.conf.new" <<CONF
# Generated by scripts/slurm/up.sh; edits are overwritten.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$D_PORT
AuthType=auth/munge
CredType=cred/munge
# cred_expire also bounds how long a requeued job must wait before it may start again (default
# 120 s); with the 2 s scheduler passes below, preempt -> requeue -> resume takes ~20 s, which
# keeps requeue tests short
AuthInfo=socket=$SOCK,cred_expire=10
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
# impossible requests (too many CPUs, --time over MaxTime) fail at sbatch instead of pending forever
EnforcePartLimits=ALL
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# no cgroup setup in containers: track job processes through /proc, no CPU binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# the node advertises NODE_CPUS whatever the hardware; without this slurmd would drain it
SlurmdParameters=config_overrides
$acct
JobCompType=jobcomp/none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
MpiDefault=none
MailProg=/bin/true
# a node that went down (e.g. slurmd restarted) comes back by itself once it registers
ReturnToService=2
InactiveLimit=0
KillWait=5
# finished jobs stay visible to squeue for 5 min (submitit reads their state from there without sacct)
MinJobAge=300
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$mem $node_gres State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=$MAX_TIME State=UP
CONF

changed=0
for f in slurm.conf gres.conf; do
  if cmp -s "$ETC/$f.new" "$ETC/$f"; then rm "$ETC/$f.new"; else mv "$ETC/$f.new" "$ETC/$f"; changed=1; fi
done
if ((changed)) && { running "$RUN/slurmctld.pid" slurmctld || running "$RUN/slurmd.pid" slurmd; }; then
  say "configuration changed: restarting slurmctld and slurmd"
  stop "$RUN/slurmd.pid" slurmd
  stop "$RUN/slurmctld.pid" slurmctld
fi

# --- accounting: a private MariaDB (own datadir, socket, port) and slurmdbd --------------------
if [ "$ACCOUNTING" = 1 ]; then
  mkdir -p "$DB"
  if [ ! -d "$DB/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$DB/data" --user=root --skip-test-db \
      --auth-root-authentication-method=normal >"$DB/install.log" 2>&1 \
      || die "mariadb-install-db failed (see $DB/install.log)"
  fi
  if ! running "$DB/mysqld.pid" mariadbd; then
    # --no-defaults: ignore /etc/mysql (a system server's socket, port, datadir); setsid so the
    # server outlives this script's session
    setsid mariadbd --no-defaults --user=root --datadir="$DB/data" --socket="$DB/mysqld.sock" \
      --pid-file="$DB/mysqld.pid" --port="$DB_PORT" --bind-address=127.0.0.1 --log-error="$DB/mysqld.err" \
      --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
  fi
  poll 30 mariadb-admin --no-defaults --socket="$DB/mysqld.sock" -uroot ping || die "MariaDB did not come up"
  mariadb --no-defaults --socket="$DB/mysqld.sock" -uroot -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "cannot create the slurm DB user"
  cat > "$ETC/slurmdbd.conf" <<CONF
# Generated by scripts/slurm/up.sh. slurmdbd reads it from next to \$SLURM_CONF.
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
CONF
  chmod 600 "$ETC/slurmdbd.conf"   # slurmdbd refuses a config others can read (it holds a password)
  running "$RUN/slurmdbd.pid" slurmdbd || slurmdbd </dev/null || die "slurmdbd did not start"
  poll 30 bash -c "</dev/tcp/127.0.0.1/$DBD_PORT" || die "slurmdbd is not listening on port $DBD_PORT"
fi

# --- slurmctld, slurmd -----------------------------------------------------------------------
running "$RUN/slurmctld.pid" slurmctld || slurmctld </dev/null || die "slurmctld did not start"
# a slurmctld that cannot bind its port exits right after daemonizing: check it is still there
ctld_ok() { running "$RUN/slurmctld.pid" slurmctld && scontrol ping | grep -q UP; }
poll 30 ctld_ok || die "slurmctld is not answering (port $CTLD_PORT taken by another cluster?)"
running "$RUN/slurmd.pid" slurmd || slurmd -N "$NODE" </dev/null || die "slurmd did not start"

# --- wait for the node -----------------------------------------------------------------------
resumed=0 state="" end=$((SECONDS + TIMEOUT))
while :; do
  state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
  case $state in
    idle | mixed | allocated | completing) break ;;
    # a drain/down saved in StateSaveLocation from an earlier run survives restarts: clear it once
    *drain* | down*) ((resumed)) || { scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true; resumed=1; } ;;
    inval*) die "node is INVAL: $(sinfo -h -n "$NODE" -o %E)" ;;
  esac
  ((SECONDS < end)) || die "node not idle after $TIMEOUT s (state '$state', reason '$(sinfo -h -n "$NODE" -o %E 2>/dev/null)')"
  sleep 0.2
done
if [ "$ACCOUNTING" = 1 ]; then
  # slurmctld registers the cluster in slurmdbd on first contact; sacct is useless until then
  poll 30 bash -c "sacctmgr -n -P list cluster format=cluster | grep -qx $CLUSTER" \
    || die "cluster $CLUSTER not registered in slurmdbd"
fi

echo "export SLURM_CONF=$SLURM_CONF" > "$BASE/slurm.env"
say "node $NODE is $state after $(elapsed "$t0") s (accounting=$ACCOUNTING cpus=$NODE_CPUS fake_gpus=$FAKE_GPUS)"
echo "export SLURM_CONF=$SLURM_CONF"
