# gmemfs-test.sh: shell functions to use gmemfs inside an integration test. Source it:
#
#   . contrib/gmemfs-test.sh
#   gmemfs_up --file vm:1M:mmap,init-shared     # any gmemfs options; the mountpoint is made here
#   dd if=/dev/zero of="$GMEMFS_MNT/vm" bs=4096 count=1 conv=notrunc
#   gmemfs_down                                  # also runs on EXIT (trap set by gmemfs_up)
#
# gmemfs_up mounts on a fresh directory from mktemp (under $TMPDIR, default /tmp), waits until
# the mount is live, and sets:
#   GMEMFS_MNT  the mountpoint          GMEMFS_PID  the daemon's pid
#   GMEMFS_LOG  the daemon's log file   GMEMFS_DIR  the directory holding all three
# gmemfs_down [STATUS] unmounts, waits for the daemon to exit, prints the log to stderr if the
# shell is failing (STATUS, default $?, is not 0) and removes the directory; returns STATUS.
# One mount per shell; the EXIT trap set by gmemfs_up replaces any earlier one. $GMEMFS names
# the binary (default: gmemfs from PATH).
#
# A killed shell (SIGKILL, or a CI timeout's SIGTERM) runs no trap: the daemon is started with
# --exit-with-parent, so it unmounts and exits when this shell ends, and a watcher in its own
# session removes GMEMFS_DIR once the mount is gone. See docs/integration-testing.md.

gmemfs_up() {
	GMEMFS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gmemfs-test.XXXXXX") || return 1
	GMEMFS_MNT=$GMEMFS_DIR/mnt
	GMEMFS_LOG=$GMEMFS_DIR/gmemfs.log
	GMEMFS_PID=
	mkdir "$GMEMFS_MNT" || return 1
	trap gmemfs_down EXIT
	# -f: the daemon stays our child and its log stays in the file; --pid-file is written
	# once the mount is live, so its presence is the readiness signal; --exit-with-parent:
	# it unmounts when this shell ends, even if no trap runs.
	"${GMEMFS:-gmemfs}" -f --exit-with-parent --pid-file "$GMEMFS_DIR/pid" "$@" "$GMEMFS_MNT" >"$GMEMFS_LOG" 2>&1 &
	local child=$! shell=$BASHPID i
	# The watcher ends when gmemfs_down removes the directory, or removes it itself once this
	# shell is gone and the mount with it (never with the mount still there).
	setsid /bin/sh -c '
		alive() { s=$(sed "s/.*) //" "/proc/$1/stat" 2>/dev/null) && [ "${s%% *}" != Z ]; }
		while alive "$1" && [ -d "$2" ]; do sleep 0.2; done
		[ -d "$2" ] || exit 0
		i=0; while mountpoint -q "$2/mnt" && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
		mountpoint -q "$2/mnt" || rm -rf --one-file-system "$2"
	' gmemfs-test-watch "$shell" "$GMEMFS_DIR" </dev/null >/dev/null 2>&1 &
	for i in $(seq 200); do   # 20 s
		if [ -s "$GMEMFS_DIR/pid" ]; then
			GMEMFS_PID=$(cat "$GMEMFS_DIR/pid")
			return 0
		fi
		kill -0 "$child" 2>/dev/null || break
		sleep 0.1
	done
	echo "gmemfs_up: gmemfs did not mount on $GMEMFS_MNT" >&2
	GMEMFS_PID=$child
	gmemfs_down 1
	return 1
}

gmemfs_down() {
	local status=$? i
	[ $# -eq 0 ] || status=$1
	[ -n "${GMEMFS_DIR:-}" ] || return "$status"
	if mountpoint -q "$GMEMFS_MNT"; then
		fusermount3 -u "$GMEMFS_MNT" 2>/dev/null || fusermount3 -u -z "$GMEMFS_MNT"
	fi
	if [ -n "$GMEMFS_PID" ]; then
		for i in $(seq 100); do kill -0 "$GMEMFS_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$GMEMFS_PID" 2>/dev/null || true
	fi
	if [ "$status" -ne 0 ]; then
		echo "--- gmemfs log ($GMEMFS_LOG) ---" >&2
		cat "$GMEMFS_LOG" >&2
	fi
	rm -rf "$GMEMFS_DIR"
	GMEMFS_DIR= GMEMFS_MNT= GMEMFS_LOG= GMEMFS_PID=
	trap - EXIT
	return "$status"
}
