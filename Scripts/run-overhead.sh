#!/usr/bin/env bash
# Scripts/run-overhead.sh [--runs N] [--bin-dir DIR]
#
# What `gmemctl run` costs a program that makes none of the calls it intercepts, against the
# same program run directly:
#   startup  : N executions of a dynamic binary (/bin/true) from one shell: exec, the dynamic
#              loader's file mmaps (MAP_PRIVATE of a file: these ARE trapped, then continued)
#   getpid   : a tight loop of 10,000,000 getpid() calls (never trapped)
#   read     : 1,000,000 one-byte read()s of /dev/zero (never trapped)
#   ioctl    : 1,000,000 ioctl(FIONREAD) on a pipe (ioctl is filtered by command in BPF, not trapped)
# plus the fixed cost of `gmemctl run -- true` (private mount up and down). Uses the release
# build (built if needed) unless --bin-dir is given. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=5; BIN=""
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--bin-dir) BIN=$2; shift 2 ;;
	*) echo "usage: $0 [--runs N] [--bin-dir DIR]" >&2; exit 2 ;;
	esac
done
if [ -z "$BIN" ]; then
	swift build -c release --product gmemctl >&2
	swift build -c release --product gmemfs >&2
	BIN=$(swift build -c release --show-bin-path)
fi
WORK=$(mktemp -d /tmp/gmem-run-overhead.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/loop.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
	long n = atol(argv[2]);
	char c;
	int z = open("/dev/zero", O_RDONLY), p[2], avail;
	if (z < 0 || pipe(p) != 0) return 1;
	double t0 = now();
	if (!strcmp(argv[1], "getpid")) for (long i = 0; i < n; i++) syscall(SYS_getpid);
	else if (!strcmp(argv[1], "read")) for (long i = 0; i < n; i++) { if (read(z, &c, 1) != 1) return 1; }
	else for (long i = 0; i < n; i++) ioctl(p[0], FIONREAD, &avail);
	printf("%.1f\n", (now() - t0) / n * 1e9);
	return 0;
}
C
cc -O2 -o "$WORK/loop" "$WORK/loop.c"
ms() { local t0 t1; t0=$(date +%s%N); "$@" > /dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
STARTS=200
startup='for i in $(seq '$STARTS'); do /bin/true; done'
echo "| measure | direct | under gmemctl run | run, stand-in KVM |"
echo "|---|---|---|---|"
for what in startup getpid read ioctl; do
	d=(); r=(); e=()
	for _ in $(seq "$RUNS"); do
		if [ "$what" = startup ]; then
			d+=("$(ms sh -c "$startup")")
			r+=("$(ms "$BIN/gmemctl" run -- sh -c "$startup")")
			e+=("$(ms "$BIN/gmemctl" run --emulate-kvm -- sh -c "$startup")")
		else
			count=1000000; [ "$what" = getpid ] && count=10000000
			d+=("$("$WORK/loop" "$what" "$count")")
			r+=("$("$BIN/gmemctl" run -- "$WORK/loop" "$what" "$count")")
			e+=("$("$BIN/gmemctl" run --emulate-kvm -- "$WORK/loop" "$what" "$count")")
		fi
	done
	unit="ns/call"; [ "$what" = startup ] && unit="ms for $STARTS runs (incl. run's own setup)"
	echo "| $what ($unit) | $(printf '%s\n' "${d[@]}" | median) | $(printf '%s\n' "${r[@]}" | median) | $(printf '%s\n' "${e[@]}" | median) |"
done
f=(); for _ in $(seq "$RUNS"); do f+=("$(ms "$BIN/gmemctl" run -- true)"); done
echo "| \`gmemctl run -- true\` (ms: mount, filter, exec, unmount) | - | $(printf '%s\n' "${f[@]}" | median) | - |"
