#!/usr/bin/env bash
# The servers the cluster tests (tests/test_cluster.py, `pytest -m cluster`) run against, on this machine:
#   - a one-node SLURM cluster: munged, slurmctld and slurmd for this host with its CPUs and memory, partition `debug`,
#     and job accounting (slurmdbd, on a MariaDB server of its own on 127.0.0.1:53306) so that `sacct` answers;
#   - a PostgreSQL server on 127.0.0.1:55432 with the database and user `hyperlab` (password `hyperlab`).
#
#   sudo scripts/services.sh up       # install Debian's packages if missing, start what is not running (idempotent)
#   sudo scripts/services.sh status   # what runs
#   sudo scripts/services.sh down     # cancel the cluster's jobs, stop everything `up` started
#
# As root, without systemd (a container, a CI machine): the daemons are started directly. Everything they keep lives
# under /var/lib/hyperlab-services (state, spool, the database, logs) and /run/hyperlab-services (pid files, sockets);
# the files outside them are /etc/slurm/slurm.conf and slurmdbd.conf, where SLURM's commands (sinfo, sbatch, srun,
# sacct) look for them, and munge's key (/etc/munge/munge.key, made if missing).
#
# Why accounting: submitit, which hydra/launcher=slurm submits through, knows a job has ended from the result file the
# job writes, and otherwise from `sacct`. A job that ends without that file (cancelled with scancel, so that the run
# exits with status 130; killed at its time or memory limit) is, without sacct, in state UNKNOWN for ever: the sweep
# would wait for it for ever. sacct needs slurmdbd, and slurmdbd stores into MySQL/MariaDB only (not PostgreSQL).
set -euo pipefail

STATE=/var/lib/hyperlab-services
RUN=/run/hyperlab-services
SLURM_CONF=/etc/slurm/slurm.conf
MARK="# written by hyperlab's scripts/services.sh"  # a slurm.conf without it is someone's cluster: left alone
PG_PORT=55432
PG_USER=hyperlab
PG_PASSWORD=hyperlab
PG_DATABASE=hyperlab
PG_URL="postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DATABASE"
SLURMDBD_CONF=/etc/slurm/slurmdbd.conf
DB_PORT=53306  # slurmdbd's MariaDB (not the usual 3306: a system MariaDB may be there)
NODE=$(hostname -s)

say() { echo "services: $*"; }
die() { echo "services: error: $*" >&2; exit 1; }

# ------------------------------------------------------------------------------------------------ installation
pg_bin() {
  # the newest PostgreSQL Debian installed (15 on Debian 12)
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n "$dir" ]] && echo "$dir"
}

install_missing() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v slurmdbd >/dev/null \
    && command -v munged >/dev/null && command -v mariadbd >/dev/null && [[ -n "$(pg_bin || true)" ]]; then
    return
  fi
  say "installing slurm-wlm, slurmdbd, munge, mariadb-server and postgresql (apt-get)"
  # no package may start its daemon on its own (they would keep running after `down`): policy-rc.d refuses
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local installed=0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm slurmdbd munge mariadb-server postgresql >/dev/null || installed=$?
  if [[ -n "$made_policy" ]]; then rm -f "$policy"; fi
  [[ $installed -eq 0 ]] || die "apt-get failed ($installed)"
}

# ------------------------------------------------------------------------------------------------ helpers
running() {
  # whether the pid in file $1 is alive
  [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop_pid_file() {
  # SIGTERM to the pid in file $1, then wait up to 20 s for it to go
  local file=$1 pid
  running "$file" || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  kill "$pid"
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$file"; return 0; }
    sleep 0.1
  done
  die "process $pid (from $file) did not stop"
}

wait_for() {
  # run "$2..." until it succeeds, up to $1 seconds
  local seconds=$1
  shift
  for _ in $(seq $((seconds * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# ------------------------------------------------------------------------------------------------ munge
munge_up() {
  # slurm's daemons and commands authenticate through munged's default socket: one munged per machine
  if [[ -S /run/munge/munge.socket.2 ]] && munge -n </dev/null | unmunge >/dev/null 2>&1; then
    return  # ours or the system's: either serves
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key  # a fresh random key, this machine's alone
  fi
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge /etc/munge/munge.key
  chmod 700 /etc/munge && chmod 600 /etc/munge/munge.key && chmod 755 /run/munge
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  echo "/run/munge/munged.pid" >"$RUN/munged.started"  # `down` stops the munged we started, not a system one
  wait_for 10 bash -c 'munge -n </dev/null | unmunge' || die "munged did not start (/var/log/munge/munged.log)"
}

munge_down() {
  if [[ -f "$RUN/munged.started" ]]; then
    stop_pid_file "$(cat "$RUN/munged.started")"
    rm -f "$RUN/munged.started"
  fi
}

# ------------------------------------------------------------------------------------------------ slurm
slurm_conf() {
  # this machine as the one node: its CPUs and memory as slurmd measures them (a node that claims more is drained)
  local hardware
  hardware=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //')
  cat <<EOF
$MARK (on $(hostname)): a one-node cluster for hyperlab's tests
ClusterName=hyperlab
SlurmctldHost=$NODE(127.0.0.1)
# the daemons run as root: no slurm-owned folders to set up (a test cluster; jobs still run as their users)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# no cgroups in a container: processes tracked through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
# accounting through slurmdbd, so that sacct answers (see scripts/services.sh's header); jobs' states only, no
# per-step resource usage
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# a node that was down (a restart) comes back by itself; scancel's SIGTERM is followed by SIGKILL after 10 s
ReturnToService=2
KillWait=10
SchedulerParameters=sched_interval=2
NodeName=$NODE NodeAddr=127.0.0.1 $hardware State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

write_slurm_conf() {
  if [[ -f $SLURM_CONF ]] && ! grep -qF "$MARK" "$SLURM_CONF"; then
    die "$SLURM_CONF is not this script's (a real cluster's?): left alone"
  fi
  local wanted
  wanted=$(slurm_conf)
  if [[ ! -f $SLURM_CONF ]] || [[ "$(cat "$SLURM_CONF")" != "$wanted" ]]; then
    # daemons running on an older version of the file (another machine's size, no accounting) start again
    stop_pid_file "$RUN/slurmd.pid"
    stop_pid_file "$RUN/slurmctld.pid"
    mkdir -p "$(dirname "$SLURM_CONF")"
    echo "$wanted" >"$SLURM_CONF"
  fi
}

node_ready() {
  # the node takes jobs: idle, mixed or allocated (not down, drained or unknown)
  sinfo -h -N -n "$NODE" -o '%T' | grep -qE '^(idle|mixed|allocated|completing)'
}

slurm_up() {
  mkdir -p "$STATE/slurmctld" "$STATE/slurmd" "$STATE/log"
  write_slurm_conf
  slurmdbd_up
  running "$RUN/slurmctld.pid" || slurmctld
  wait_for 20 scontrol ping || die "slurmctld did not answer ($STATE/log/slurmctld.log)"
  running "$RUN/slurmd.pid" || slurmd
  if ! wait_for 20 node_ready; then  # (a node a crash left down or drained: taken back)
    scontrol update nodename="$NODE" state=resume 2>/dev/null || true
    wait_for 20 node_ready || die "node $NODE is not ready: $(sinfo -N -h -o '%T %E') ($STATE/log/slurmd.log)"
  fi
}

slurm_down() {
  # jobs first: their processes (slurmstepd and below) would outlive slurmd
  if running "$RUN/slurmctld.pid"; then
    local jobs
    jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
    if [[ -n "${jobs// /}" ]]; then
      say "cancelling jobs $jobs"
      # shellcheck disable=SC2086  # one id per word
      scancel $jobs || true
      # shellcheck disable=SC2016  # (expanded by the inner bash, at each try)
      wait_for 30 bash -c '[[ -z "$(squeue -h)" ]]' || say "jobs still listed: $(squeue -h | tr '\n' ';')"
    fi
  fi
  stop_pid_file "$RUN/slurmd.pid"
  stop_pid_file "$RUN/slurmctld.pid"
  stop_pid_file "$RUN/slurmdbd.pid"
  mariadb_down
}

# ------------------------------------------------------------------------------------------------ accounting
mariadb_up() {
  # slurmdbd's database: a MariaDB server of its own (--no-defaults: none of /etc/mysql's settings, a system
  # server's socket and port left alone), on 127.0.0.1 only
  local data=$STATE/mariadb socket=$RUN/mariadb/mariadb.sock
  mkdir -p "$RUN/mariadb" "$STATE/log"
  chown mysql:mysql "$RUN/mariadb"
  if [[ ! -d $data/mysql ]]; then
    install -d -o mysql -g mysql -m 700 "$data"
    mariadb-install-db --no-defaults --user=mysql --datadir="$data" --skip-test-db >"$STATE/log/mariadb-install.log"
  fi
  if ! running "$RUN/mariadb/mariadb.pid"; then
    setsid mariadbd --no-defaults --user=mysql --datadir="$data" --socket="$socket" \
      --pid-file="$RUN/mariadb/mariadb.pid" --bind-address=127.0.0.1 --port=$DB_PORT \
      --innodb-buffer-pool-size=64M --log-error="$STATE/log/mariadb.log" </dev/null >/dev/null 2>&1 &
  fi
  wait_for 30 mariadb-admin --no-defaults -S "$socket" ping || die "MariaDB did not start ($STATE/log/mariadb.log)"
  # root through the socket (MariaDB's unix_socket login); slurmdbd over TCP with a password
  mariadb --no-defaults -S "$socket" -u root -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY
    'slurm'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'"
}

mariadb_down() {
  stop_pid_file "$RUN/mariadb/mariadb.pid"
}

slurmdbd_conf() {
  cat <<CONF
$MARK: slurmdbd for the one-node cluster in slurm.conf
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
}

slurmdbd_up() {
  mariadb_up
  if [[ -f $SLURMDBD_CONF ]] && ! grep -qF "$MARK" "$SLURMDBD_CONF"; then
    die "$SLURMDBD_CONF is not this script's (a real cluster's?): left alone"
  fi
  local wanted
  wanted=$(slurmdbd_conf)
  if [[ ! -f $SLURMDBD_CONF ]] || [[ "$(cat "$SLURMDBD_CONF")" != "$wanted" ]]; then
    stop_pid_file "$RUN/slurmdbd.pid"
    echo "$wanted" >"$SLURMDBD_CONF"
    chmod 600 "$SLURMDBD_CONF"  # (it holds a password: slurmdbd refuses a file others can read)
  fi
  running "$RUN/slurmdbd.pid" || slurmdbd
  wait_for 30 sacctmgr -n show cluster || die "slurmdbd did not answer ($STATE/log/slurmdbd.log)"
  # the cluster must be known to slurmdbd before slurmctld sends it jobs
  if ! sacctmgr -n -P show cluster format=cluster | grep -qx hyperlab; then
    sacctmgr -i add cluster hyperlab >/dev/null
  fi
}

# ------------------------------------------------------------------------------------------------ postgresql
pg() {
  # a command of PostgreSQL's, as the postgres user (the server refuses to run as root)
  local command=$1
  shift
  runuser -u postgres -- "$(pg_bin)/$command" "$@"
}

sql() {
  # one statement as the superuser, through the server's socket; prints the result's first column
  runuser -u postgres -- psql -h "$RUN/postgres" -p "$PG_PORT" -U postgres -d postgres -tAq -c "$1"
}

postgres_up() {
  local data=$STATE/postgres
  mkdir -p "$RUN/postgres" "$STATE/log"
  chown postgres:postgres "$RUN/postgres"
  touch "$STATE/log/postgres.log" && chown postgres:postgres "$STATE/log/postgres.log"
  if [[ ! -f $data/PG_VERSION ]]; then
    install -d -o postgres -g postgres -m 700 "$data"
    # the socket: trust (root's own admin through runuser); TCP: passwords (scram), as a real server asks
    pg initdb -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
  fi
  if ! pg pg_ctl status -D "$data" >/dev/null 2>&1; then
    pg pg_ctl start -D "$data" -w -t 30 -l "$STATE/log/postgres.log" \
      -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $RUN/postgres -c max_connections=100" >/dev/null
  fi
  if [[ -z "$(sql "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" ]]; then
    sql "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'"
  fi
  if [[ -z "$(sql "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" ]]; then
    sql "CREATE DATABASE $PG_DATABASE OWNER $PG_USER"
  fi
}

postgres_down() {
  local data=$STATE/postgres
  if [[ -f $data/PG_VERSION ]] && pg pg_ctl status -D "$data" >/dev/null 2>&1; then
    pg pg_ctl stop -D "$data" -m fast -w >/dev/null
  fi
}

# ------------------------------------------------------------------------------------------------ commands
status() {
  local code=0
  if [[ -S /run/munge/munge.socket.2 ]] && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged: running"
  else
    say "munged: not running"; code=1
  fi
  if running "$RUN/mariadb/mariadb.pid"; then say "mariadb (slurmdbd's): running on 127.0.0.1:$DB_PORT"
  else say "mariadb (slurmdbd's): not running"; code=1; fi
  local daemon
  for daemon in slurmdbd slurmctld slurmd; do
    if running "$RUN/$daemon.pid"; then say "$daemon: running (pid $(cat "$RUN/$daemon.pid"))"
    else say "$daemon: not running"; code=1; fi
  done
  if [[ -f $STATE/postgres/PG_VERSION ]] && pg pg_ctl status -D "$STATE/postgres" >/dev/null 2>&1; then
    say "postgresql: running on 127.0.0.1:$PG_PORT"
  else
    say "postgresql: not running"; code=1
  fi
  return $code
}

how_to_reach() {
  say "SLURM: partition debug, node $NODE ($(nproc) CPUs), accounting on; try: sinfo; srun -N1 hostname;"
  say "       sbatch --wrap 'sleep 1'; squeue; sacct"
  sinfo
  say "PostgreSQL: $PG_URL   (psql $PG_URL)"
  say "stop them: scripts/services.sh down"
}

up() {
  install_missing
  mkdir -p "$STATE" "$RUN"
  munge_up
  slurm_up
  postgres_up
  how_to_reach
}

down() {
  slurm_down
  munge_down
  postgres_down
  say "stopped"
}

main() {
  [[ $(id -u) -eq 0 ]] || die "run as root (it starts daemons and installs packages): sudo $0 ${1:-up}"
  case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
  esac
}

main "$@"
