#!/usr/bin/env bash
# A single-node Slurm cluster on this Debian machine (as root): install, configure, start, stop.
#
#   sweeps/slurm_cluster.sh start    # installs munge + Slurm if missing, configures, starts; idempotent
#                                    # (says "already running" when it started nothing)
#   sweeps/slurm_cluster.sh status   # exit 0 when the controller answers and the node is usable
#   sweeps/slurm_cluster.sh stop     # stops slurmd, slurmctld and munged
#
# It is how CI (.ci/run) and tests/test_slurm.py get a real scheduler; on a machine with a real
# cluster you never need it (it refuses to touch a slurm.conf it did not write). Packages: Debian's
# munge slurmctld slurmd slurm-client (--no-install-recommends). Their daemons are not started by
# the packages in containers (policy-rc.d) nor by systemd here, so this script starts them itself.
# The configuration keeps a test cluster fast and cgroup-free:
#   ProctrackType=proctrack/linuxproc, TaskPlugin=task/none  no cgroups needed
#   SelectType=select/cons_tres, CR_Core                      one core per task: tasks share the node
#   SchedulerParameters=batch_sched_delay=0,sched_interval=5  a job starts ~1 s after sbatch (~3 s default)
#   AuthInfo=cred_expire=10                                   a requeued job restarts after ~13 s (120 s default)
#   JobCompType=jobcomp/filetxt                               finished jobs are listed without slurmdbd
#   KillWait=30                                               SIGTERM (time limit, requeue) -> SIGKILL 30 s later
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# Written by the scaling project's sweeps/slurm_cluster.sh"
LOG_DIR=/var/log/slurm
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
PACKAGES=(munge slurmctld slurmd slurm-client)

say() { echo "slurm_cluster: $*" >&2; }
die() { say "$*"; exit 1; }

installed() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
              && command -v sbatch >/dev/null && command -v munged >/dev/null; }

install_packages() {
  installed && return 0
  [ "$(id -u)" = 0 ] || die "Slurm is not installed and installing it needs root"
  command -v apt-get >/dev/null || die "Slurm is not installed and this machine has no apt-get"
  say "installing ${PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local log
  if ! log=$(apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" 2>&1); then
    # A fresh machine has no package lists yet.
    log=$(apt-get update -q 2>&1 && apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" 2>&1) \
      || { printf '%s\n' "$log" >&2; die "could not install ${PACKAGES[*]}"; }
  fi
}

node_line() {  # this machine's node line (CPUs, sockets, cores, memory) as slurmd measures it
  slurmd -C | head -n 1 | sed "s/^NodeName=[^ ]*/NodeName=$(hostname -s)/"
}

write_config() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: this machine has its own Slurm setup"
  fi
  local host conf
  host=$(hostname -s)
  conf="$MARK
ClusterName=scaling
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0,sched_interval=5
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
KillWait=30
ReturnToService=2
MpiDefault=none
$(node_line) State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP"
  if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$conf" ]; then
    mkdir -p "$(dirname "$CONF")"
    printf '%s\n' "$conf" > "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
    return 0  # changed: running daemons must restart
  fi
  return 1
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

usable() {  # the controller answers and the node takes jobs (idle, mixed, allocated, planned, ...)
  scontrol ping 2>/dev/null | grep -q "is UP" || return 1
  local state
  state=$(sinfo --noheader --nodes="$(hostname -s)" --format=%T 2>/dev/null | head -n 1)
  case "$state" in ""|down*|drain*|fail*|unknown*|not_responding*) return 1 ;; *) return 0 ;; esac
}

wait_usable() {
  for _ in $(seq 300); do usable && return 0; sleep 0.1; done
  die "the cluster did not come up in 30 s; see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log"
}

stop_daemon() {  # pid file, name: SIGTERM, then wait for it to go
  running "$1" || return 0
  local pid
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "$2 (pid $pid) did not stop"
}

start() {
  local began=$SECONDS changed=0
  install_packages
  [ "$(id -u)" = 0 ] || { usable && exit 0; die "starting the Slurm daemons needs root"; }
  write_config && changed=1
  if [ "$changed" = 0 ] && running /run/slurmctld.pid && running /run/slurmd.pid \
      && running /run/munge/munged.pid; then
    wait_usable
    say "already running"
    return 0
  fi
  if [ "$changed" = 1 ]; then
    stop_daemon /run/slurmd.pid slurmd
    stop_daemon /run/slurmctld.pid slurmctld
  fi
  mkdir -p "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR"
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /etc/munge
  [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
  running /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
  running /run/slurmctld.pid || slurmctld
  running /run/slurmd.pid || slurmd
  wait_usable
  say "up in $((SECONDS - began)) s: $(node_line | cut -d' ' -f1-2)"
}

stop() {
  stop_daemon /run/slurmd.pid slurmd
  stop_daemon /run/slurmctld.pid slurmctld
  stop_daemon /run/munge/munged.pid munged
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) installed && usable ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
