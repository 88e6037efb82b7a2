#!/usr/bin/env bash
# Stop what tests/slurm/start_cluster.sh started: each daemon by the PID it
# recorded in STATE_DIR (default /tmp/dfrobust-slurm), and remove the
# configuration it wrote. Jobs still in the queue are cancelled first, and job processes
# that outlived their job are killed.
set -uo pipefail

STATE=${1:-/tmp/dfrobust-slurm}
MARK="# written by dfrobust tests/slurm/start_cluster.sh"
# the cluster's name, from the configuration start_cluster.sh wrote (removed at the end)
CLUSTER=
if [ -f /etc/slurm/slurm.conf ] && grep -qF "$MARK" /etc/slurm/slurm.conf; then
    CLUSTER=$(sed -n 's/^ClusterName=//p' /etc/slurm/slurm.conf)
fi

stop() {   # stop NAME: TERM the PID in $STATE/NAME.pid, then KILL if it lingers
    local file="$STATE/$1.pid" pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "stop_cluster: stopped $1 ($pid)"
    fi
    rm -f "$file"
}

# jobs still queued or running are cancelled first (they would outlive slurmd)
if [ -f "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
    jobs=$(squeue -h -o %i 2>/dev/null)
    if [ -n "$jobs" ]; then
        scancel $jobs
        for _ in $(seq 30); do [ -z "$(squeue -h -t PD,R,CG -o %i 2>/dev/null)" ] && break; sleep 1; done
    fi
fi
stop slurmd
stop slurmctld
stop munged
# a cancelled job's processes that slurmstepd lost (proctrack/linuxproc follows the process tree only):
# every process started for this cluster's jobs carries SLURM_CLUSTER_NAME=<its ClusterName>
if [ -n "$CLUSTER" ]; then
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}; pid=${pid%/environ}
        if { tr '\0' '\n' < "$environ"; } 2>/dev/null | grep -qxF "SLURM_CLUSTER_NAME=$CLUSTER"; then
            kill -9 "$pid" 2>/dev/null && echo "stop_cluster: killed a leftover job process ($pid)"
        fi
    done
fi
# the configuration start_cluster.sh wrote (never one it did not write)
for conf in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
    if [ -f "$conf" ] && grep -qF "$MARK" "$conf"; then
        rm -f "$conf"
    fi
done
exit 0
