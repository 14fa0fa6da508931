#!/usr/bin/env bash
# Scripts/transport-compare.sh [--runs N] [--seconds S] [--bench-dir DIR]
#
# gmemfs on its two transports side by side in one run (docs/performance.md, "Transports"):
# the classic /dev/fuse loop and FUSE over io_uring (-o io_uring), plus, with --bench-dir
# (the benchmark kit's io directory, holding cbaseline.c; not part of this repository), the C
# libfuse baseline on the classic transport for getxattr and reads. Per run, every metric is
# measured on each daemon in turn, alternating which goes first (ABBA), S seconds each:
#   conversion round trip, 4 KiB, by xattr and by ioctl (to private and to shared)
#   getxattr round trip
#   4 KiB O_DIRECT random reads; 4 KiB buffered sequential reads, page cache dropped each pass
# with 1 and 2 client threads. Prints a Markdown table of medians of the per-run means.
# Needs root: turns /sys/module/fuse/parameters/enable_uring on and restores it on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. Scripts/lib/daemon.sh
RUNS=5; SECONDS_EACH=2; BENCH=${GMEM_BENCH_IO:-}
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--seconds) SECONDS_EACH=$2; shift 2 ;;
	--bench-dir) BENCH=$2; shift 2 ;;
	*) echo "usage: $0 [--runs N] [--seconds S] [--bench-dir DIR]" >&2; exit 2 ;;
	esac
done
PARAM=/sys/module/fuse/parameters/enable_uring
[ -e "$PARAM" ] || { echo "transport-compare: this kernel has no FUSE over io_uring ($PARAM)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "transport-compare: needs root (enable_uring)" >&2; exit 2; }
OLD_PARAM=$(cat "$PARAM")
WORK=$(mktemp -d /tmp/gmem-transport.XXXXXX)
cleanup() {
	daemon_stop_all
	echo "$OLD_PARAM" > "$PARAM"
	rm -rf "$WORK"
}
trap cleanup EXIT
echo Y > "$PARAM"

swift build -c release --product gmemfs >&2
GMEMFS="$(swift build -c release --show-bin-path)/gmemfs"
cc -O2 -Wall -pthread -I Sources/CGmemABI/include Scripts/lib/transport-bench.c -o "$WORK/transport-bench"

FILES=(--file "c:16M:init-shared" --file "d:64M:init-shared" --file "b:64M:mmap,init-shared")
daemon_start "$WORK/m-classic" "$GMEMFS" -f -o auto_unmount "${FILES[@]}"
daemon_start "$WORK/m-uring" "$GMEMFS" -f -o auto_unmount,io_uring --log-file "$WORK/uring.log" "${FILES[@]}"
stat "$WORK/m-uring" >/dev/null
for _ in $(seq 100); do grep -q "io_uring: serving over" "$WORK/uring.log" && break; sleep 0.05; done
grep -q "io_uring: serving over" "$WORK/uring.log" || { echo "transport-compare: the io_uring daemon fell back: $(cat "$WORK/uring.log")" >&2; exit 1; }
DAEMONS=(classic uring)
if [ -n "$BENCH" ]; then
	[ -f "$BENCH/cbaseline.c" ] || { echo "transport-compare: no $BENCH/cbaseline.c" >&2; exit 2; }
	cc -O2 -Wall "$BENCH/cbaseline.c" $(pkg-config fuse3 --cflags --libs) -o "$WORK/cbaseline"
	daemon_start "$WORK/m-cbase" "$WORK/cbaseline" -f --size 64M --name f
	daemon_start "$WORK/m-cbdio" "$WORK/cbaseline" -f --size 64M --name f --direct-io
	DAEMONS+=(cbase)
fi

# path DAEMON MODE: the file MODE runs on (empty: not measured on that daemon).
path() {
	case $1:$2 in
	cbase:conv-*) echo "" ;;
	cbase:dread) echo "$WORK/m-cbdio/f" ;;
	cbase:*) echo "$WORK/m-cbase/f" ;;
	*:conv-*) echo "$WORK/m-$1/c" ;;
	*:dread) echo "$WORK/m-$1/d" ;;
	*:bread) echo "$WORK/m-$1/b" ;;
	*:getxattr) echo "$WORK/m-$1/c" ;;
	esac
}

declare -A OUT
MODES=(conv-xattr conv-ioctl getxattr dread bread)
for r in $(seq "$RUNS"); do
	order=("${DAEMONS[@]}")
	[ $((r % 2)) = 0 ] && order=($(printf '%s\n' "${DAEMONS[@]}" | tac))
	for mode in "${MODES[@]}"; do
		for clients in 1 2; do
			for d in "${order[@]}"; do
				p=$(path "$d" "$mode")
				[ -n "$p" ] || continue
				line=$("$WORK/transport-bench" "$mode" "$p" "$clients" "$SECONDS_EACH")
				echo "run=$r $d $line" >&2
				OUT[$d:$mode:$clients]+="$line"$'\n'
			done
		done
	done
done

# med KEY FIELD: the median of FIELD over the runs.
med() {
	printf '%s' "${OUT[$1]:-}" | sed -n "s/.* $2=\([0-9.]*\).*/\1/p" | sort -g | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print "-"}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

echo "| metric | clients | classic | io_uring | io_uring / classic | C baseline (classic) |"
echo "|---|---|---|---|---|---|"
row() { # label mode field clients
	local c u b
	c=$(med "classic:$2:$4" "$3"); u=$(med "uring:$2:$4" "$3")
	b=$([ -n "$BENCH" ] && med "cbase:$2:$4" "$3" || echo "-")
	echo "| $1 | $4 | $c | $u | $(ratio "$u" "$c") | $b |"
}
for clients in 1 2; do
	row "conversion by xattr, round trip µs (mean)" conv-xattr mean_us $clients
	row "  to private µs" conv-xattr to_private_us $clients
	row "  to shared µs" conv-xattr to_shared_us $clients
	row "conversion by ioctl, round trip µs (mean)" conv-ioctl mean_us $clients
	row "  to private µs" conv-ioctl to_private_us $clients
	row "  to shared µs" conv-ioctl to_shared_us $clients
	row "getxattr µs (mean)" getxattr mean_us $clients
	row "getxattr µs (p50)" getxattr p50_us $clients
	row "getxattr ops/s" getxattr ops_per_s $clients
	row "4 KiB direct reads MiB/s" dread mib_per_s $clients
	row "4 KiB buffered reads MiB/s" bread mib_per_s $clients
done
