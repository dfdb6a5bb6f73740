#!/usr/bin/env bash
# Durable enroll throughput on PostgreSQL through two nodes: a throwaway cluster (initdb, the
# server's default durability: fsync on, synchronous_commit on) on a real disk, two siamesed
# nodes on it (--db postgresql://...), config/haproxy.cfg in front of them (its three addresses
# substituted), and bench/enroll_load.c (the load of bench/enroll.sh) enrolling N Fashion-MNIST
# images, PER per request, one new subject each, from CLIENTS (16) concurrent clients through the
# balancer, ROUNDS times on fresh databases. A 201 comes only after the commit, so samples/s is
# durable throughput. Then, per node, the store's commits vs writes from /metrics (group commit),
# the database's transactions and WAL, and the CPU the nodes and the balancer used.
# Env: N (20000), PER (10), ROUNDS (3), CLIENTS (16), THREADS (16: HTTP workers per node), BUILD
# (build-release), MODEL (default: a random-weight model from mkmodel; enroll cost does not
# depend on the weights), PGBASE (directory the cluster goes in; default a mktemp -d under
# /tmp: a disk, so commits pay for the fsync), PG_BINDIR (default: pg_config --bindir).
# Needs postgresql and haproxy (scripts/install-deps.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-20000}; per=${PER:-10}; rounds=${ROUNDS:-3}; threads=${THREADS:-16}; clients=${CLIENTS:-16}
build=${BUILD:-build-release}
bindir=${PG_BINDIR:-$(pg_config --bindir)}
[ -x "$bindir/initdb" ] || { echo "pg_enroll.sh: no initdb in $bindir (install postgresql)" >&2; exit 1; }
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || { echo "pg_enroll.sh: install haproxy" >&2; exit 1; }
haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
meson compile -C "$build" siamesed tests/integration/mkmodel bench/enroll_load >/dev/null
tmp=$(mktemp -d "${PGBASE:-/tmp}/pg_enroll.XXXXXX")
pids=()
pgdata=""
# PostgreSQL refuses to run as root: as root the cluster belongs to the postgres user.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_down() { [ -n "$pgdata" ] && as_pg "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true; pgdata=""; }
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; pg_down; rm -rf "$tmp"; }
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] && chown postgres "$tmp"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { until curl -fs "http://127.0.0.1:$1/healthz" >/dev/null 2>&1; do sleep 0.05; done; }
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$1/stat"; }
psql_q() { "$bindir/psql" -X -q -t -A -h "$tmp" -p "$pgport" -U postgres -d siamesed -c "$1"; }
model=${MODEL:-$tmp/model.safetensors}
[ -f "$model" ] || "$build/tests/integration/mkmodel" "$model" 1
echo "cpu:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(nproc) cores); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "postgres: $("$bindir/postgres" --version); cluster in $tmp ($(df -P "$tmp" | awk 'NR==2 {print $1}'))"
for r in $(seq "$rounds"); do
    pgdata=$tmp/data$r; pgport=$(free_port)
    as_pg "$bindir/initdb" -D "$pgdata" -A trust -U postgres -E UTF8 --locale=C >/dev/null
    as_pg "$bindir/pg_ctl" -D "$pgdata" -l "$tmp/pg$r.log" -w \
        -o "-c port=$pgport -c listen_addresses='' -c unix_socket_directories=$tmp" start >/dev/null
    "$bindir/psql" -X -q -h "$tmp" -p "$pgport" -U postgres -d postgres -c 'CREATE DATABASE siamesed'
    uri="postgresql:///siamesed?host=$tmp&port=$pgport&user=postgres"
    ports=(); dpids=()
    for node in 1 2; do
        port=$(free_port); ports+=("$port")
        "$build/siamesed" --listen "127.0.0.1:$port" --model "$model" --db "$uri" \
            --threads "$threads" --log-level warn --train-if-missing no --max-per-ip 0 \
            2>"$tmp/node$node-$r.log" &
        pids+=($!); dpids+=($!)
        wait_http "$port"
    done
    lb=$(free_port)
    sed -e "s/bind 127.0.0.1:8080/bind 127.0.0.1:$lb/" \
        -e "s/server node1 127.0.0.1:8081/server node1 127.0.0.1:${ports[0]}/" \
        -e "s/server node2 127.0.0.1:8082/server node2 127.0.0.1:${ports[1]}/" \
        -e "s/^    log stdout.*//" -e "s/^    option httplog//" config/haproxy.cfg >"$tmp/haproxy.cfg"
    "$haproxy" -f "$tmp/haproxy.cfg" -db >"$tmp/haproxy$r.log" 2>&1 &
    pids+=($!); hpid=$!
    wait_http "$lb"
    before=$(psql_q "SELECT xact_commit FROM pg_stat_database WHERE datname = 'siamesed'")
    wal0=$(psql_q "SELECT pg_current_wal_lsn() - '0/0'")
    "$build/bench/enroll_load" "http://127.0.0.1:$lb" "$n" "$per" "$clients"
    after=$(psql_q "SELECT xact_commit FROM pg_stat_database WHERE datname = 'siamesed'")
    wal1=$(psql_q "SELECT pg_current_wal_lsn() - '0/0'")
    echo "database: $(psql_q 'SELECT count(*) FROM samples') samples, $((after - before)) transactions committed (all sessions), $(((wal1 - wal0) / 1024)) KiB WAL"
    for i in 0 1; do
        m=$(curl -fs "http://127.0.0.1:${ports[$i]}/metrics" | grep -E '^siamesed_store_(commits|writes)_total ' | tr '\n' ' ')
        echo "node$((i + 1)): ${m:-no store metrics} CPU $(proc_cpu "${dpids[$i]}") s"
    done
    echo "haproxy CPU $(proc_cpu "$hpid") s"
    kill "${dpids[@]}" "$hpid"; wait "${dpids[@]}" "$hpid" 2>/dev/null || true
    pg_down
done
