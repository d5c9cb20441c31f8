#!/usr/bin/env bash
# dev-memory.sh: runs `leadpulse dev` with demo traffic for a while and
# prints, every interval, what the process holds: its resident set (RSS,
# from /proc), the Go heap in use and the heap the runtime keeps from the
# OS (go_memstats_* from /metrics), the contacts in the memory store and
# the events applied; with PROFILES, heap profiles (/debug/pprof/heap) and
# what each part holds in them: the embedded broker, the contact state, the
# UI's history, the Kafka clients. It answers "does dev grow, and what
# holds its memory?" in a way anyone can repeat; it is not a test and
# asserts nothing. Needs curl, and go for the build and the profiles.
#
#   scripts/dev-memory.sh                    # 10 minutes at 2,000 events/s, a row every 30 s
#   MINUTES=3 RATE=500 EVERY=10 scripts/dev-memory.sh
#   PROFILES="2 8" scripts/dev-memory.sh     # also heap profiles at minutes 2 and 8
#
# Settings (environment):
#   MINUTES   how long dev runs                         default: 10
#   RATE      --demo-rate, events/s                     default: 2000
#   EVERY     seconds between rows                      default: 30
#   PROFILES  minutes at which to save a heap profile   default: none
#             (OUT/heap-MIN.pb.gz; `go tool pprof -top -inuse_space FILE`)
#   OUT       directory for the profiles and dev's log  default: a new mktemp -d
#   HTTP      dev's --http                              default: 127.0.0.1:18080
#   KAFKA     dev's --kafka                             default: 127.0.0.1:19092
#   LEADPULSE the binary to run                         default: built from this checkout
#   DEV_ARGS  more dev flags, e.g. "--redis 127.0.0.1:6379"
#
# Peak RSS is the largest sample and VmHWM (the kernel's high-water mark)
# at the end. The first minute or two is warm-up: the contacts arrive, the
# broker's topics fill up to their retention (docs/commands.md#dev).
set -euo pipefail

MINUTES=${MINUTES:-10}
RATE=${RATE:-2000}
EVERY=${EVERY:-30}
PROFILES=${PROFILES:-}
HTTP=${HTTP:-127.0.0.1:18080}
KAFKA=${KAFKA:-127.0.0.1:19092}
OUT=${OUT:-$(mktemp -d /tmp/dev-memory.XXXXXX)}
mkdir -p "$OUT"

root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${LEADPULSE:-}" ]]; then
	LEADPULSE=$OUT/leadpulse
	(cd "$root" && go build -o "$LEADPULSE" ./cmd/leadpulse)
fi

# shellcheck disable=SC2086 # DEV_ARGS is split into flags on purpose
"$LEADPULSE" dev --demo-rate "$RATE" --http "$HTTP" --kafka "$KAFKA" ${DEV_ARGS:-} >"$OUT/actions.log" 2>"$OUT/dev.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

for _ in $(seq 100); do
	curl -fsS "http://$HTTP/readyz" >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || { cat "$OUT/dev.log" >&2; exit 1; }
	sleep 0.2
done

# metric NAME: the first sample of NAME (summed over labels) in /metrics.
metrics=""
metric() {
	awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2; f = 1 } END { if (f) printf "%.0f", s; else print "-" }' <<<"$metrics"
}
mb() { [[ $1 == - ]] && echo - || awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
status() { awk -v k="$1:" '$1 == k { print $2 * 1024 }' "/proc/$pid/status"; }

echo "leadpulse dev --demo-rate $RATE for $MINUTES min ($(uptime | sed 's/.*load/load/')); profiles and logs in $OUT"
printf '%7s %8s %10s %10s %10s %9s %11s\n' time RSS_MB heap_inuse heap_sys heap_idle contacts events/s
start=$(date +%s)
end=$((start + MINUTES * 60))
peak=0
prevEvents=0 prevT=$start
declare -A saved=()
rows=""
tick=0
while :; do
	now=$(date +%s)
	el=$((now - start))
	kill -0 "$pid" 2>/dev/null || { echo "dev exited:" >&2; tail -5 "$OUT/dev.log" >&2; exit 1; }
	metrics=$(curl -fsS "http://$HTTP/metrics" || true)
	rss=$(status VmRSS)
	((rss > peak)) && peak=$rss
	events=$(metric 'leadpulse_events_in_total{stage="score"}')
	[[ $events == - ]] && events=0
	rate=$(((events - prevEvents) / (now > prevT ? now - prevT : 1)))
	prevEvents=$events prevT=$now
	row=$(printf '%4d:%02d %8s %10s %10s %10s %9s %11s' $((el / 60)) $((el % 60)) "$(mb "$rss")" \
		"$(mb "$(metric go_memstats_heap_inuse_bytes)")" "$(mb "$(metric go_memstats_heap_sys_bytes)")" \
		"$(mb "$(metric go_memstats_heap_idle_bytes)")" "$(metric leadpulse_state_memory_contacts)" "$rate")
	echo "$row"
	rows+=$row$'\n'
	for m in $PROFILES; do
		if [[ -z "${saved[$m]:-}" ]] && ((el >= m * 60)); then
			curl -fsS -o "$OUT/heap-$m.pb.gz" "http://$HTTP/debug/pprof/heap" && saved[$m]=1
		fi
	done
	((now >= end)) && break
	tick=$((tick + EVERY))
	wait=$((start + tick - $(date +%s)))
	((wait > 0)) && sleep "$wait"
done
echo "peak RSS $(mb "$peak") MB sampled, VmHWM $(mb "$(status VmHWM)") MB; heap in use, sys, idle in MB (go_memstats_heap_*_bytes); events/s applied since the row before"
# inuse MB of the allocations whose stack matches focus (and not ignore).
inuse() {
	go tool pprof -top -nodefraction 0 -inuse_space -unit MB -focus "$2" ${3:+-ignore "$3"} "$1" 2>/dev/null |
		awk '/^Showing nodes accounting for/ { v = $5; sub(/MB,?$/, "", v); print v + 0; f = 1 } END { if (!f) print 0 }'
}
if [[ -n $PROFILES ]]; then
	echo
	echo "heap in use by part (MB, from the heap profiles; as of the last GC before each):"
	printf '%7s %7s %8s %8s %8s %8s %12s
' minute total broker state ui_hist clients state/contact
fi
for m in $PROFILES; do
	f=$OUT/heap-$m.pb.gz
	[[ -f $f ]] || continue
	total=$(go tool pprof -top -inuse_space -unit MB "$f" 2>/dev/null | awk '/^Showing nodes/ { v = $(NF - 1); sub(/MB$/, "", v); print v + 0 }')
	state=$(inuse "$f" 'leadpulse/(rules|state|engine)\.' 'leadpulse/admin|kfake')
	contacts=$(awk -v m="$m" '$1 ~ /^[0-9]+:/ { split($1, t, ":"); if (t[1] + t[2] / 60 <= m) c = $6 } END { print c }' <<<"$rows")
	printf '%7s %7s %8s %8s %8s %8s %12s
' "$m" "$total" "$(inuse "$f" 'franz-go/pkg/kfake')" "$state" \
		"$(inuse "$f" 'leadpulse/admin\.' kfake)" "$(inuse "$f" 'franz-go/pkg/kgo' kfake)" \
		"$(awk -v s="$state" -v c="$contacts" 'BEGIN { if (c > 0) printf "%.0f B", s * 1048576 / c; else print "-" }')"
done
if [[ -n $PROFILES ]]; then
	echo "broker: the embedded kfake (its log and index); state: allocations under rules, state, engine (contact state, caches);"
	echo "ui_hist: the admin UI's history and feed; clients: franz-go clients. Look closer: go tool pprof -top -inuse_space $OUT/heap-MIN.pb.gz"
fi
