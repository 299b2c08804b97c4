#!/bin/sh
# DNS: dnsperf against hydra-server and unbound serving the same names
# (unbound from local-data), on loopback, same machine, same run, same
# query file. Each round runs both at saturation (dnsperf's default 100
# queries outstanding) and reports qps; then both at the same fixed rates,
# fractions LOADS of the lower saturation qps, where dnsperf -v's
# per-query latencies give p50/p99. Prints each figure and the
# hydra/unbound qps ratio.
#
#   bench/dns.sh                              # 10s runs, 3 rounds, 50 names of 3 instances, loads 0.1 0.5
#   DURATION=5 ROUNDS=5 NAMES=200 LOADS="0.25 0.5" bench/dns.sh
#
# Needs dnsperf and unbound (Debian packages). unbound runs as a plain
# process from a config file written here (no control interface, chroot or
# user switch), with as many threads as hydra-server has CPUs.
set -eu
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
NAMES=${NAMES:-50}
LOADS=${LOADS:-0.1 0.5}
CPUS=$(nproc)
dir=$(mktemp -d)
hpid= upid=
cleanup() {
	[ -n "$hpid" ] && kill "$hpid" 2>/dev/null || true
	[ -n "$upid" ] && kill "$upid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM
for tool in dnsperf unbound dig; do
	command -v $tool >/dev/null || { echo "bench/dns.sh: $tool is not installed" >&2; exit 2; }
done

freeport() { # a port free for UDP and TCP on 127.0.0.1
	p=$1
	while ss -Hlnut "sport = :$p" | grep -q .; do p=$((p + 1)); done
	echo $p
}
hport=$(freeport 18600)
uport=$(freeport $((hport + 1)))

CGO_ENABLED=0 go build -trimpath -o "$dir/hydra-server" ./cmd/hydra-server

# The same names for both: webI with 3 instances on 10.I/256.I%256.{1,2,3},
# port 8000+I; queries: 8 A, 1 SRV, 1 NXDOMAIN per name.
svcargs=
{
	cat <<UB
server:
    interface: 127.0.0.1@$uport
    port: $uport
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "$dir"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: $CPUS
    so-reuseport: yes
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    local-zone: "hydra." static
remote-control:
    control-enable: no
UB
} >"$dir/unbound.conf"
: >"$dir/queries"
i=1
while [ $i -le "$NAMES" ]; do
	a=$((i / 256)) b=$((i % 256))
	for h in 1 2 3; do
		ip="10.$a.$b.$h"
		hex=$(printf '%02x%02x%02x%02x' 10 $a $b $h)
		svcargs="$svcargs --service web$i=tcp://$ip:$((8000 + i))"
		{
			echo "    local-data: \"web$i.service.hydra. 0 IN A $ip\""
			echo "    local-data: \"_web$i._tcp.service.hydra. 0 IN SRV 1 1 $((8000 + i)) $hex.addr.hydra.\""
			echo "    local-data: \"$hex.addr.hydra. 0 IN A $ip\""
		} >>"$dir/unbound.conf.data"
	done
	for _ in 1 2 3 4 5 6 7 8; do echo "web$i.service.hydra A"; done >>"$dir/queries"
	echo "_web$i._tcp.service.hydra SRV" >>"$dir/queries"
	echo "nope$i.service.hydra A" >>"$dir/queries"
	i=$((i + 1))
done
# local-data belongs in the server: clause, before remote-control.
sed -i "/local-zone:/r $dir/unbound.conf.data" "$dir/unbound.conf"

# shellcheck disable=SC2086
"$dir/hydra-server" --port 0 --log-level warn --dns "127.0.0.1:$hport" $svcargs >"$dir/hydra.log" 2>&1 &
hpid=$!
unbound -d -c "$dir/unbound.conf" >"$dir/unbound.log" 2>&1 &
upid=$!
for port in $hport $uport; do
	n=0
	until [ "$(dig +short +time=1 +tries=1 -p $port @127.0.0.1 web1.service.hydra A | wc -l)" = 3 ]; do
		n=$((n + 1))
		[ $n -lt 50 ] || { echo "bench/dns.sh: no answer on port $port" >&2; cat "$dir"/*.log >&2; exit 1; }
		sleep 0.2
	done
done

qps() { # port -> queries per second at saturation
	dnsperf -s 127.0.0.1 -p "$1" -d "$dir/queries" -l "$DURATION" -c 8 -T "$CPUS" 2>/dev/null |
		awk '/Queries per second/ {print $4} /Queries lost/ {lost=$3} END {if (lost+0 > 0) print "lost " lost > "/dev/stderr"}'
}
lat() { # port rate -> "p50_ms p99_ms" at that rate
	dnsperf -s 127.0.0.1 -p "$1" -d "$dir/queries" -l "$DURATION" -Q "$2" -c 8 -T 1 -v 2>/dev/null |
		awk '/^> / {print $NF * 1000}' | sort -n |
		awk '{v[NR] = $1} END {i50 = int(NR * 0.50); i99 = int(NR * 0.99); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1; printf "%.3f %.3f\n", v[i50], v[i99]}'
}

echo "DNS: dnsperf, $NAMES names (x3 instances), $(wc -l <"$dir/queries") queries in the file (80% A, 10% SRV, 10% NXDOMAIN), ${DURATION}s runs, $CPUS CPUs"
echo "round  hydra_qps  unbound_qps  ratio"
r=1
lats=
while [ $r -le "$ROUNDS" ]; do
	hq=$(qps $hport)
	uq=$(qps $uport)
	awk -v r=$r -v h="$hq" -v u="$uq" 'BEGIN { printf "%-5d  %9.0f  %11.0f  %5.2f\n", r, h, u, h / u }'
	for load in $LOADS; do
		rate=$(awk -v a="$hq" -v b="$uq" -v f="$load" 'BEGIN {m = a < b ? a : b; printf "%d", m * f}')
		lats="$lats$(printf '%-5d  %4s  %7d  %s  %s' $r "$load" "$rate" "$(lat $hport "$rate")" "$(lat $uport "$rate")")
"
	done
	r=$((r + 1))
done
echo
echo "latency at a fixed rate (load: fraction of the lower saturation qps); milliseconds"
echo "round  load     rate  hydra_p50 hydra_p99  unbound_p50 unbound_p99"
printf '%s' "$lats"
