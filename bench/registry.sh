#!/bin/sh
# Registry lookups against redis GETs, on loopback, same machine, same run,
# same load shape: 64 connections with 2 requests in flight each, each
# server in its own process. Each round runs `hydra-server bench registry
# --target` against hydra-server (1000 names x 3 instances, preloaded by
# the bench itself) and redis-benchmark -t get against redis-server (3000
# keys preloaded with SET, hit at random with -r). Server CPU per request
# is utime+stime from /proc/PID/stat over a window inside each load run,
# divided by the server's own request counter over the same window (INFO
# "requests" for hydra, INFO stats total_commands_processed for redis), so
# it does not depend on how either client counts. The load generator's CPU
# is read the same way: on a small machine it competes with the server.
# Prints each round's figures and the hydra/redis ratios.
#
#   bench/registry.sh                         # 6s runs, 3 rounds
#   DURATION=10 ROUNDS=5 bench/registry.sh
#   CONNS=64 PIPELINE=2 VALUE=3 bench/registry.sh   # the defaults
#
# Needs redis-server and redis-tools (Debian packages). redis-server runs
# as a plain process (no persistence, one I/O thread, as redis is by
# default); hydra-server is built from this tree.
set -eu
cd "$(dirname "$0")/.."
DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
PIPELINE=${PIPELINE:-2}
VALUE=${VALUE:-3}
KEYS=3000
HZ=$(getconf CLK_TCK)
[ "$DURATION" -ge 3 ] || { echo "bench/registry.sh: DURATION must be at least 3 (seconds)" >&2; exit 2; }
dir=$(mktemp -d)
hpid= rpid= cpid=
cleanup() {
	[ -n "$cpid" ] && kill "$cpid" 2>/dev/null || true
	[ -n "$hpid" ] && kill "$hpid" 2>/dev/null || true
	[ -n "$rpid" ] && kill "$rpid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for tool in redis-server redis-benchmark redis-cli; do
	command -v $tool >/dev/null || { echo "bench/registry.sh: $tool is not installed (apt-get install redis-server redis-tools)" >&2; exit 2; }
done
rbver=$(redis-benchmark --version 2>/dev/null | awk '{print $2}')
case $rbver in
[0-5].*) echo "bench/registry.sh: redis-benchmark $rbver has no percentiles in --csv; need 6.2 or later" >&2; exit 2 ;;
esac

freeport() { # a TCP port nothing listens on, from $1 up
	p=$1
	while ss -Hltn "sport = :$p" | grep -q .; do p=$((p + 1)); done
	echo $p
}
hport=$(freeport 18800)
rport=$(freeport $((hport + 1)))

CGO_ENABLED=0 go build -trimpath -o "$dir/hydra-server" ./cmd/hydra-server

"$dir/hydra-server" --port "$hport" --http '' --dns off --max-entries-per-client 10000 --log-level warn >"$dir/hydra.log" 2>&1 &
hpid=$!
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --io-threads 1 --logfile '' >"$dir/redis.log" 2>&1 &
rpid=$!

hydra_requests() { "$dir/hydra-server" info --port "$hport" --json 2>/dev/null | awk -F: '/^  "requests":/ {print $2 + 0}'; }
redis_requests() { redis-cli -p "$rport" info stats 2>/dev/null | awk -F: '/^total_commands_processed:/ {print $2 + 0}'; }
n=0
until [ -n "$(hydra_requests)" ] && [ "$(redis-cli -p "$rport" ping 2>/dev/null)" = PONG ]; do
	n=$((n + 1))
	[ $n -lt 50 ] || { echo "bench/registry.sh: a server did not start" >&2; cat "$dir"/*.log >&2; exit 1; }
	sleep 0.2
done
awk -v n=$KEYS -v v="$(printf "%${VALUE}s" | tr ' ' x)" 'BEGIN { for (i = 0; i < n; i++) printf "SET key:%012d %s\n", i, v }' |
	redis-cli -p "$rport" | grep -vc '^OK$' | grep -qx 0 || { echo "bench/registry.sh: redis preload failed" >&2; exit 1; }

ticks() { # pid -> utime+stime in clock ticks, all threads (empty once it has exited)
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'
}
# snap SERVERPID COUNTERFN -> "seconds server_ticks client_ticks requests".
# The server's ticks are read on both sides of the counter query and
# averaged, so the time the query takes splits evenly.
snap() {
	s1=$(ticks "$1") c1=$(ticks "$cpid")
	req=$($2)
	s2=$(ticks "$1") c2=$(ticks "$cpid")
	echo "$(date +%s.%N) $s1 $s2 ${c1:--1} ${c2:--1} $req" | awk '{printf "%s %.1f %.1f %s\n", $1, ($2 + $3) / 2, ($4 < 0 || $5 < 0) ? -1 : ($4 + $5) / 2, $6}'
}
# window A B -> "server_us_per_req client_us_per_req server_cores requests/s", from two snaps.
window() {
	echo "$1 $2" | awk -v hz="$HZ" '{
		dt = $5 - $1; dr = $8 - $4
		if (NF != 8 || dr <= 0 || dt <= 0) { print "- - - -"; exit } # a counter query failed
		cl = ($3 < 0 || $7 < 0) ? "-" : sprintf("%.2f", ($7 - $3) * 1e6 / hz / dr)
		printf "%.2f %s %.2f %.0f\n", ($6 - $2) * 1e6 / hz / dr, cl, ($6 - $2) / hz / dt, dr / dt }'
}

# hydra: the bench preloads, then loads for 1s of warm-up and DURATION
# measured; the window is [2s, DURATION+0.5s] after launch, inside the load.
hydra_round() {
	base=$(hydra_requests)
	"$dir/hydra-server" bench registry --target "tcp://127.0.0.1:$hport" --op lookup \
		--concurrency "$CONNS" --pipeline "$PIPELINE" --duration "${DURATION}s" --json --quiet >"$dir/hb.json" 2>"$dir/hb.err" &
	cpid=$!
	sleep 2
	a=$(snap $hpid hydra_requests)
	[ "$(echo "$a" | awk '{print $4}')" -gt $((base + KEYS)) ] || echo "bench/registry.sh: round $r: hydra's preload was not done 2s in; its window includes registrations" >&2
	sleep $((DURATION - 2)).5
	kill -0 $cpid 2>/dev/null || echo "bench/registry.sh: round $r: the hydra bench ended inside the CPU window" >&2
	b=$(snap $hpid hydra_requests)
	wait $cpid || { echo "bench/registry.sh: hydra bench failed:" >&2; cat "$dir/hb.err" >&2; exit 1; }
	cpid=
	# "K/s p50_ms p99_ms" from the bench's own report.
	{
		awk -F: '/"msgs_per_sec":/ {k = $2 / 1000} /"p50_us":/ {p50 = $2 / 1000} /"p99_us":/ {p99 = $2 / 1000}
			END {printf "%.1f %.3f %.3f\n", k, p50, p99}' "$dir/hb.json"
		window "$a" "$b"
	} | tr '\n' ' ' >"$dir/h.out"
}

# redis: redis-benchmark has no warm-up or duration; a first run of
# 300000 GETs warms redis and sets the count so that each run lasts about
# 2 x DURATION (rates vary from run to run); the window is [0.5s, DURATION-0.5s] after launch.
rcount=100000
# exec: started with &, the job's pid is then redis-benchmark's own, whose CPU snap reads.
redis_bench() { exec redis-benchmark -p "$rport" -t get -c "$CONNS" -P "$PIPELINE" -d "$VALUE" -r $KEYS -n "$1" --csv; }
redis_csv() { # the GET row of redis-benchmark --csv -> "K/s p50_ms p99_ms", columns found by name
	tr -d '"\r' <"$1" | awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) col[$i] = i; next}
		$1 == "GET" {printf "%.1f %.3f %.3f\n", $col["rps"] / 1000, $col["p50_latency_ms"], $col["p99_latency_ms"]}'
}
redis_round() {
	redis_bench "$rcount" >"$dir/rb.csv" 2>"$dir/rb.err" &
	cpid=$!
	sleep 0.5
	a=$(snap $rpid redis_requests)
	sleep $((DURATION - 1))
	kill -0 $cpid 2>/dev/null || echo "bench/registry.sh: round $r: redis-benchmark ended inside the CPU window" >&2
	b=$(snap $rpid redis_requests)
	wait $cpid || { echo "bench/registry.sh: redis-benchmark failed:" >&2; cat "$dir/rb.err" >&2; exit 1; }
	cpid=
	line=$(redis_csv "$dir/rb.csv")
	[ -n "$line" ] || { echo "bench/registry.sh: no GET row in redis-benchmark's output:" >&2; cat "$dir/rb.csv" >&2; exit 1; }
	echo "$line $(window "$a" "$b")" >"$dir/r.out"
	rcount=$(echo "$line" | awk -v d="$DURATION" '{printf "%d", $1 * 1000 * d * 2}')
}

(redis_bench 300000) >"$dir/rb.csv" 2>"$dir/rb.err" || { cat "$dir/rb.err" >&2; exit 1; }
rcount=$(redis_csv "$dir/rb.csv" | awk -v d="$DURATION" '{printf "%d", $1 * 1000 * d * 2}')

echo "Registry LOOKUP (hydra-server) vs GET (redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), redis-benchmark $rbver): $CONNS connections x $PIPELINE in flight, ${DURATION}s runs, $(nproc) CPUs"
echo "cpu: server (client) CPU us per request, /proc utime+stime over a window inside the run / the server's request counter; cores: the server's CPU use"
echo "round | hydra   K/s  p50_ms  p99_ms  cpu_us (client) cores | redis   K/s  p50_ms  p99_ms  cpu_us (client) cores | hydra/redis  K/s  cpu"
r=1
while [ "$r" -le "$ROUNDS" ]; do
	hydra_round
	redis_round
	echo "$r $(cat "$dir/h.out") $(cat "$dir/r.out")" | awk '{
		printf "%-5d | %11.1f  %6.3f  %6.3f  %6s  (%5s) %5s | %11.1f  %6.3f  %6.3f  %6s  (%5s) %5s |",
			$1, $2, $3, $4, $5, $6, $7, $9, $10, $11, $12, $13, $14
		printf " %15.2f  %s\n", $2 / $9, ($5 == "-" || $12 == "-") ? "-" : sprintf("%.2f", $5 / $12) }'
	r=$((r + 1))
done
redis-cli -p "$rport" info stats | awk -F: '/^keyspace_misses:/ && $2 + 0 > 0 {print "bench/registry.sh: redis had " $2 + 0 " misses" > "/dev/stderr"}'
