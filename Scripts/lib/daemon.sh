# Scripts/lib/daemon.sh: start, wait for and stop FUSE daemons from a shell script, with the
# contract of the Swift harness (Sources/GmemDaemonProcess, used by the tests and the tour):
# a start returns only once the mount is in mountinfo, and every daemon and mount is gone
# after daemon_stop_all, whatever path the script takes (call it from an EXIT trap).
# Source it: . "$(dirname "$0")/lib/daemon.sh"

DAEMON_PIDS=()
DAEMON_MOUNTS=()

# daemon_is_mounted DIR: whether DIR is a mount point now (util-linux's mountpoint(1) reads
# mountinfo and decodes its escapes: a grep of /proc/mounts misses paths with spaces).
daemon_is_mounted() {
	mountpoint -q "$1"
}

# daemon_start DIR CMD...: runs `CMD... DIR` in the background (the command runs in the
# foreground, e.g. `gmemfs -f -o auto_unmount ...`, output discarded) and waits up to 10 s for
# the mount. On failure it stops everything started so far and exits 1.
daemon_start() {
	local dir=$1; shift
	mkdir -p "$dir"
	"$@" "$dir" >/dev/null 2>&1 </dev/null & DAEMON_PIDS+=($!)
	DAEMON_MOUNTS+=("$dir")
	local _
	for _ in $(seq 200); do daemon_is_mounted "$dir" && return 0; sleep 0.05; done
	echo "${0##*/}: $dir did not mount" >&2
	daemon_stop_all
	exit 1
}

# daemon_last_pid: the pid of the daemon started last.
daemon_last_pid() {
	echo "${DAEMON_PIDS[-1]}"
}

# daemon_stop_all: SIGTERM to every daemon (each unmounts), up to 10 s for them to exit, then
# SIGKILL and a lazy unmount of whatever is still mounted. Idempotent.
daemon_stop_all() {
	local p m _
	for p in "${DAEMON_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for _ in $(seq 200); do
		local alive=0
		for p in "${DAEMON_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.05
	done
	for p in "${DAEMON_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for m in "${DAEMON_MOUNTS[@]}"; do daemon_is_mounted "$m" && fusermount3 -u -z "$m"; done
	DAEMON_PIDS=()
	DAEMON_MOUNTS=()
}
