#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for `make test-slurm`.
#
# Installs (Debian packages, as root, when missing) and starts munge, MariaDB,
# slurmdbd, slurmctld and slurmd. Every daemon listens on loopback only; state,
# logs and configuration live under $SLURM_TEST_DIR (default /tmp/swift-slurm).
# Daemons bind to 127.0.0.1 only (CommunicationParameters=NoInAddrAny; MariaDB
# --bind-address). Accounting goes through slurmdbd into MariaDB, because the Snakemake SLURM
# executor plugin reads job states with `sacct` (with accounting storage disabled
# sacct fails: "Slurm accounting storage is disabled").
#
# The node advertises what workflow/profiles/slurm asks of it (8 CPUs, 64000 MB,
# one GPU, partitions cpu and gpu) with SlurmdParameters=config_overrides, so the
# profile's real mem_mb / runtime / cpus_per_task / gpu reach sbatch unchanged; the
# tiny preset runs on the CPU whatever it is given (device: cpu).
#
#   tests/cluster/start-slurm.sh      # start (idempotent), then `sinfo` works
#   tests/cluster/stop-slurm.sh       # stop every daemon started here
set -euo pipefail

D=${SLURM_TEST_DIR:-/tmp/swift-slurm}
CLUSTER=swifttest
NODE=$(hostname -s)
CPUS=${SLURM_TEST_CPUS:-8}
MEM_MB=${SLURM_TEST_MEM_MB:-64000}
NICE=${SLURM_TEST_NICE:-nice -n 19}
DBPASS=swiftslurm

[ "$(id -u)" = 0 ] || { echo "start-slurm.sh: run as root (it starts system daemons)" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v slurmdbd >/dev/null \
   || ! command -v munged >/dev/null || ! command -v mariadbd >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm slurmctld slurmd slurmdbd slurm-client munge mariadb-server >/dev/null
fi

mkdir -p "$D"/{etc,log,spool/ctld,spool/d,run/munge,run/mysql,mysql}
chmod 755 "$D"

# --- munge (authentication) ---------------------------------------------------------
mkdir -p /run/munge /etc/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge "$D/run/munge"
chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key; chmod 755 /run/munge
if ! munge -n </dev/null >/dev/null 2>&1; then
  $NICE runuser -u munge -- /usr/sbin/munged --pid-file="$D/run/munge/munged.pid"
  for _ in $(seq 20); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.5; done
fi
munge -n </dev/null | unmunge >/dev/null

# --- MariaDB (accounting storage), loopback only ---------------------------------------
SOCK="$D/run/mysql/mysqld.sock"
if [ ! -d "$D/mysql/mysql" ]; then
  chown mysql:mysql "$D/mysql"
  mariadb-install-db --user=mysql --datadir="$D/mysql" --auth-root-authentication-method=socket >/dev/null
fi
chown -R mysql:mysql "$D/mysql" "$D/run/mysql"
if ! mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1; then
  $NICE runuser -u mysql -- mariadbd --datadir="$D/mysql" --socket="$SOCK" --pid-file="$D/run/mysql/mysqld.pid" \
    --bind-address=127.0.0.1 --port=3307 --innodb-buffer-pool-size=64M --log-error="$D/log/mysqld.log" \
    </dev/null >>"$D/log/mysqld.out" 2>&1 &
  for _ in $(seq 60); do mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
mariadb --socket="$SOCK" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"

# --- configuration -----------------------------------------------------------------------
cat > "$D/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
CommunicationParameters=NoInAddrAny
SlurmUser=root
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
CONF
chmod 600 "$D/etc/slurmdbd.conf"

cat > "$D/etc/slurm.conf" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CommunicationParameters=NoInAddrAny
StateSaveLocation=$D/spool/ctld
SlurmdSpoolDir=$D/spool/d
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
MinJobAge=300
InactiveLimit=0
KillWait=30
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
CONF
# one GPU that is only a name (no device file): jobs asking --gpus=1 are scheduled
printf "AutoDetect=off\nNodeName=$NODE Name=gpu File=/dev/null Count=1\n" > "$D/etc/gres.conf"
# client commands (sbatch, sacct, squeue) find the configuration here
mkdir -p /etc/slurm
for f in slurm.conf gres.conf slurmdbd.conf; do ln -sf "$D/etc/$f" "/etc/slurm/$f"; done
export SLURM_CONF="$D/etc/slurm.conf"

# --- daemons ---------------------------------------------------------------------------------
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running "$D/run/slurmdbd.pid" || $NICE slurmdbd
for _ in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.5; done
running "$D/run/slurmctld.pid" || $NICE slurmctld
for _ in $(seq 60); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.5; done
# the cluster, an account and this user in the accounting database (the plugin submits with -A)
sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i add account swift Cluster="$CLUSTER" Description=tests Organization=tests >/dev/null 2>&1 || true
sacctmgr -i add user "$(id -un)" Account=swift Cluster="$CLUSTER" >/dev/null 2>&1 || true
running "$D/run/slurmd.pid" || $NICE slurmd
for _ in $(seq 60); do sinfo -h -N -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)' && break; sleep 1; done
# a node drained by an earlier start (another gres.conf, a killed slurmd) comes back
sinfo -h -N -o %T | grep -Eq 'drain|down|inval' && scontrol update NodeName="$NODE" State=RESUME || true
for _ in $(seq 30); do sinfo -h -N -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)$' && break; sleep 1; done
sinfo -N -o "%N %P %c %m %G %T"
