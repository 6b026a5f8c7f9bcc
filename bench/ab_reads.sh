#!/bin/bash
# Interleaved A/B of running Lienthong servers under wrk (issue 20, read tail): per cell, req/s, p50,
# p99, max, server CPU per read (master + workers, /proc) and PostgreSQL CPU per read (the backends
# whose application_name the server's --db URL set, e.g. …/bench_read?application_name=A).
#   LUA=reads.lua DB=bench_read bench/ab_reads.sh ROUNDS SECONDS "1 4 8" name:port:pid:appname ...
# The lua is the one bench_server.py writes (a list of read paths, one request per line).
ROUNDS=$1; SECS=$2; CONNS=$3; shift 3
LUA=${LUA:?set LUA to the wrk script}; DB=${DB:-bench_read}
ticks() { local t=0; for p in "$@"; do [ -r /proc/$p/stat ] || continue; set -- $(awk '{print $14, $15}' /proc/$p/stat); t=$((t+$1+$2)); done; echo $t; }
pgpids() { psql -h 127.0.0.1 -U postgres -d "$DB" -Atc "select pid from pg_stat_activity where application_name='$1'"; }
for r in $(seq "$ROUNDS"); do
 for c in $CONNS; do
  for spec in "$@"; do
   IFS=: read -r name port pid app <<< "$spec"
   sp="$pid $(pgrep -P "$pid")"; pp=$(pgpids "$app")
   s0=$(ticks $sp); g0=$(ticks $pp); la=$(cut -d' ' -f1 /proc/loadavg)
   out=$(wrk -t$(( c<2 ? 1 : 2 )) -c"$c" -d"${SECS}"s --latency -s "$LUA" "http://127.0.0.1:$port")
   s1=$(ticks $sp); g1=$(ticks $pp)
   n=$(echo "$out" | awk '/requests in/{print $1}')
   p50=$(echo "$out" | awk '$1=="50%"{print $2}'); p99=$(echo "$out" | awk '$1=="99%"{print $2}')
   mx=$(echo "$out" | awk '/Latency/ && NF==5{print $4}')
   echo "r$r c$c $name load=$la rps=$((n/SECS)) p50=$p50 p99=$p99 max=$mx" \
     "srv_us/req=$(( (s1-s0)*10000/n )) pg_us/req=$(( (g1-g0)*10000/n ))"
  done
 done
done
