#!/usr/bin/env bash
# Scripts/io-compare.sh [--runs N] [--size-mb N] [--bench-dir DIR]
#
# Side-by-side I/O comparison of gmemfs against the C libfuse baseline (the benchmark kit's
# io/ directory, holding cbaseline.c and io-bench.sh; not part of this repository), in
# one run, alternating the daemons so that machine noise hits both alike:
#   page cache : gmemfs file with flags mmap,init-shared  vs  cbaseline
#   direct_io  : gmemfs file with flag init-shared        vs  cbaseline --direct-io
# then conversion latency (4 KiB setxattr round trips, p50/p90; 1 GiB conversions with nothing
# cached) and the idle RSS of a daemon holding a 64 GiB sparse file.
# Needs root (drop_caches). Prints a Markdown table; raw lines go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
. Scripts/lib/daemon.sh
RUNS=3; SIZE_MB=1024; BENCH=${GMEM_BENCH_IO:-}
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--size-mb) SIZE_MB=$2; shift 2 ;;
	--bench-dir) BENCH=$2; shift 2 ;;
	*) echo "usage: $0 [--runs N] [--size-mb N] [--bench-dir DIR]" >&2; exit 2 ;;
	esac
done
[ -f "$BENCH/cbaseline.c" ] || { echo "io-compare: give the benchmark kit's io directory (--bench-dir DIR or GMEM_BENCH_IO): no ${BENCH:-DIR}/cbaseline.c" >&2; exit 2; }
WORK=$(mktemp -d /tmp/gmem-io.XXXXXX)
cleanup() {
	daemon_stop_all
	rm -rf "$WORK"
}
trap cleanup EXIT

swift build -c release --product gmemfs >&2
GMEMFS="$(swift build -c release --show-bin-path)/gmemfs"
cc -O2 -Wall "$BENCH/cbaseline.c" $(pkg-config fuse3 --cflags --libs) -o "$WORK/cbaseline"

start() { # name cmd...
	local dir="$WORK/m-$1"; shift
	daemon_start "$dir" "$@"
}
SIZE="${SIZE_MB}M"
start gmem "$GMEMFS" -f -o auto_unmount --file "f:$SIZE:mmap,init-shared" --file "d:$SIZE:init-shared"
start cbase "$WORK/cbaseline" -f --size "$SIZE" --name f
start cbdio "$WORK/cbaseline" -f --size "$SIZE" --name f --direct-io

declare -A LINE
bench() { # key file
	local out
	out=$(bash "$BENCH/io-bench.sh" "$2" --runs 1 --size-mb "$SIZE_MB" --warmup 1) || { echo "io-compare: bench $1 failed" >&2; exit 1; }
	echo "$1 $out" >&2
	LINE[$1]+="$out"$'\n'
}
for r in $(seq "$RUNS"); do
	# ABBA order: odd runs measure gmemfs first, even runs the baseline first.
	if [ $((r % 2)) = 1 ]; then
		bench gmem "$WORK/m-gmem/f"; bench cbase "$WORK/m-cbase/f"
		bench gmemdio "$WORK/m-gmem/d"; bench cbdio "$WORK/m-cbdio/f"
	else
		bench cbase "$WORK/m-cbase/f"; bench gmem "$WORK/m-gmem/f"
		bench cbdio "$WORK/m-cbdio/f"; bench gmemdio "$WORK/m-gmem/d"
	fi
done
med() { # key field
	printf '%s' "${LINE[$1]}" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}
echo "| mode | metric | gmemfs | C baseline | ratio |"
echo "|---|---|---|---|---|"
for pair in "page cache:gmem:cbase" "direct_io:gmemdio:cbdio"; do
	IFS=: read -r mode a b <<<"$pair"
	for f in seq_write_mbs seq_read_cold_mbs rand4k_read_iops; do
		x=$(med "$a" $f); y=$(med "$b" $f)
		echo "| $mode | $f | $x | $y | $(awk -v x="$x" -v y="$y" 'BEGIN{printf "%.2f", x/y}') |"
	done
done

# Conversion latency: 4 KiB round trips, and 1 GiB with nothing cached.
cat > "$WORK/convlat.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
static void conv(const char *f, const char *v) { if (setxattr(f, "user.gmem.set_attributes", v, strlen(v), 0)) { perror(v); exit(1); } }
int main(int argc, char **argv) {
	const char *f = argv[1]; unsigned long long size = strtoull(argv[2], 0, 10);
	enum { N = 2000 }; static double lat[N]; char v[128];
	for (int i = 0; i < N; i++) {
		snprintf(v, sizeof v, "%d 4096 %s", (i / 2 % 256) * 4096, i % 2 ? "shared" : "private");
		double t = now(); conv(f, v); lat[i] = now() - t;
	}
	qsort(lat, N, sizeof lat[0], cmp);
	double big[10];
	for (int i = 0; i < 10; i++) {
		snprintf(v, sizeof v, "0 %llu %s", size, i % 2 ? "shared" : "private");
		double t = now(); conv(f, v); big[i] = now() - t;
	}
	qsort(big, 10, sizeof big[0], cmp);
	printf("conv4k_p50_us=%.1f conv4k_p90_us=%.1f conv_all_p50_us=%.1f\n", lat[N / 2], lat[N * 9 / 10], big[5]);
	return 0;
}
C
cc -O2 -o "$WORK/convlat" "$WORK/convlat.c"
sync; echo 3 > /proc/sys/vm/drop_caches
conv=$("$WORK/convlat" "$WORK/m-gmem/f" $((SIZE_MB * 1048576)))
echo "conversions $conv" >&2
echo
echo "| conversion | value |"
echo "|---|---|"
for k in conv4k_p50_us conv4k_p90_us conv_all_p50_us; do echo "| $k ($SIZE_MB MiB file for conv_all) | $(sed -n "s/.*$k=\([0-9.]*\).*/\1/p" <<<"$conv") |"; done

# Idle RSS with a 64 GiB sparse file.
start idle "$GMEMFS" -f -o auto_unmount --file "big:64G:mmap"
sleep 1
rss=$(awk '/VmRSS/ {print $2}' "/proc/$(daemon_last_pid)/status")
echo "| idle RSS, 64 GiB sparse file | ${rss} KiB |"
