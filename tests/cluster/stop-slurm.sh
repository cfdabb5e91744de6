#!/usr/bin/env bash
# Stop the daemons tests/cluster/start-slurm.sh started (by their pid files).
set -uo pipefail
D=${SLURM_TEST_DIR:-/tmp/swift-slurm}
stop() {  # stop <pid file> <name>
  [ -s "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && echo "stop-slurm.sh: $2 ($pid) still running" >&2
  fi
  rm -f "$1"
}
stop "$D/run/slurmd.pid" slurmd
stop "$D/run/slurmctld.pid" slurmctld
stop "$D/run/slurmdbd.pid" slurmdbd
stop "$D/run/mysql/mysqld.pid" mariadbd
stop "$D/run/munge/munged.pid" munged
echo "slurm test cluster stopped"
