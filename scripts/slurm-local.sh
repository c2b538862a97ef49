#!/usr/bin/env bash
# A single-node SLURM on this machine, for the tests of batch ingest: munged, slurmctld and slurmd
# from Debian's packages (slurm-wlm, munge), configured for localhost in a folder of their own.
#
#   scripts/slurm-local.sh start DIR   # writes DIR/slurm.conf, starts the daemons, waits for the node
#   scripts/slurm-local.sh stop DIR    # stops them
#
# Clients find the cluster with SLURM_CONF=DIR/slurm.conf. Needs root (slurmd runs jobs as their
# user). Exit code 3 when the packages are missing, 4 when the daemons do not come up.
set -euo pipefail
cmd=${1:?start or stop}
dir=$(realpath -m "${2:?a state directory}")

stop() {
    for name in slurmd slurmctld munged; do
        if [ -f "$dir/$name.pid" ]; then
            kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
            rm -f "$dir/$name.pid"
        fi
    done
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi

for exe in munged mungekey slurmctld slurmd sbatch sinfo; do
    if ! command -v "$exe" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$exe" ]; then
        echo "slurm-local: $exe not found (apt-get install slurm-wlm munge)" >&2
        exit 3
    fi
done
export PATH="/usr/sbin:$PATH"
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
mkdir -p "$dir"/{munge,state,spool,log,run}
chmod 700 "$dir/munge"

# munge: a key of our own and a socket in the folder, so a system munged is left alone.
if [ ! -f "$dir/munge/munge.key" ]; then
    mungekey --create --keyfile="$dir/munge/munge.key" --force
fi
chmod 400 "$dir/munge/munge.key"
sock="$dir/munge/munge.socket"
munged --force --key-file="$dir/munge/munge.key" --socket="$sock" --pid-file="$dir/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" 2>>"$dir/log/munged.log"

cat > "$dir/slurm.conf" <<EOF
ClusterName=pcdata-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$(( 16817 + RANDOM % 2000 ))
SlurmdPort=$(( 18817 + RANDOM % 2000 ))
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=60
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
: > "$dir/cgroup.conf"
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$dir/slurm.conf" 2>>"$dir/log/slurmctld.err"
slurmd -f "$dir/slurm.conf" 2>>"$dir/log/slurmd.err"

for _ in $(seq 1 60); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        echo "slurm-local: up (SLURM_CONF=$dir/slurm.conf)"
        exit 0
    fi
    sleep 1
done
echo "slurm-local: the node did not come up; logs in $dir/log" >&2
tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 2>/dev/null || true
stop
exit 4
