#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this machine, for the test suite.
#
#   tests/slurm/start_cluster.sh [STATE_DIR]     (default /tmp/dfrobust-slurm; needs root)
#   tests/slurm/stop_cluster.sh  [STATE_DIR]
#
# What it does (no systemd needed):
#   1. installs slurmctld, slurmd, slurm-client and munge from the Debian
#      packages when they are missing (SLURM 22.05 on Debian 12);
#   2. writes /etc/slurm/slurm.conf and gres.conf for one node named after
#      `hostname -s`, with the CPUs and memory `slurmd -C` reports and one fake
#      GPU (File=/dev/null), so that `sbatch --gpus=1` is accepted;
#      no accounting database (sacct does not work: use squeue for job status);
#   3. starts munged (as the munge user), `slurmctld -c` (fresh state) and
#      slurmd, and waits until the node is idle.
# PIDs of what it started go to STATE_DIR/*.pid, which stop_cluster.sh kills.
# A slurm.conf that this script did not write is never overwritten.
set -euo pipefail

STATE=${1:-/tmp/dfrobust-slurm}
HERE=$(cd "$(dirname "$0")" && pwd)
MARK="# written by dfrobust tests/slurm/start_cluster.sh"
CONF_DIR=/etc/slurm
NODE=$(hostname -s)

say() { echo "start_cluster: $*"; }
die() { echo "start_cluster: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (it installs packages and starts daemons)"

# 1. packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "apt-get not found: install slurmctld slurmd slurm-client munge yourself"
    say "installing SLURM and munge from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -qF "$MARK" "$CONF_DIR/slurm.conf"; then
    die "$CONF_DIR/slurm.conf exists and was not written by this script; not touching a real cluster"
fi

# a previous run that was not stopped (crashed test session): stop it first
"$HERE/stop_cluster.sh" "$STATE" >/dev/null 2>&1 || true
rm -rf "$STATE"
mkdir -p "$STATE/ctld" "$STATE/spool" "$CONF_DIR"

# 2. configuration: the node as slurmd sees it, plus one fake GPU
NODE_LINE=$(slurmd -C | head -n 1)          # NodeName=<host> CPUs=.. RealMemory=..
case "$NODE_LINE" in NodeName=*) ;; *) die "unexpected output of slurmd -C: $NODE_LINE" ;; esac
cat > "$CONF_DIR/slurm.conf" <<EOF
$MARK
ClusterName=dfrobust-ci
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# no systemd / cgroups here
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# no accounting database: sacct fails, job status comes from squeue, which
# keeps finished jobs for MinJobAge seconds
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
SchedulerParameters=sched_interval=2
GresTypes=gpu
$NODE_LINE Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
cat > "$CONF_DIR/gres.conf" <<EOF
$MARK
NodeName=$NODE Name=gpu File=/dev/null
EOF

# 3. daemons
if ! munge -n >/dev/null 2>&1; then       # no munged answering yet: start ours
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    [ -f /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key; }
    runuser -u munge -- munged
    cp /run/munge/munged.pid "$STATE/munged.pid"     # ours: stop_cluster stops it
fi
munge -n | unmunge >/dev/null || die "munge does not work"

slurmctld -c
slurmd

say "waiting for node $NODE"
for _ in $(seq 60); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    case "$state" in
        idle*) say "cluster up: $(sinfo -h -o '%P %D %T %c CPUs %m MB %G')"; exit 0 ;;
        drain*|down*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
done
echo "--- slurmctld.log"; tail -n 20 "$STATE/slurmctld.log" || true
echo "--- slurmd.log"; tail -n 20 "$STATE/slurmd.log" || true
die "node $NODE did not become idle (state: ${state:-none})"
