#!/usr/bin/env bash
# Scripts/test-install.sh: Scripts/install.sh into a temporary DESTDIR, then checks what a
# newcomer relies on: every file is there, the man pages list exactly the options --help lists,
# the completions load, `mount -t fuse.gmemfs` finds the installed gmemfs (in a private mount
# namespace that puts the DESTDIR's bin at /usr/local/bin, so the host is untouched),
# `gmemctl stats --json` parses, and --uninstall removes everything. Needs root (mount).
set -euo pipefail
cd "$(dirname "$0")/.."

destdir=$(mktemp -d /tmp/gmemfs-install.XXXXXX)
trap 'rm -rf "$destdir"' EXIT
fail() { echo "test-install: $*" >&2; exit 1; }

DESTDIR=$destdir PREFIX=/usr/local Scripts/install.sh >"$destdir.log" 2>&1 || { cat "$destdir.log" >&2; rm -f "$destdir.log"; fail "install.sh failed"; }
rm -f "$destdir.log"
root=$destdir/usr/local

for t in gmemfs gmemctl; do
	for f in bin/$t share/man/man1/$t.1 share/bash-completion/completions/$t \
		share/zsh/site-functions/_$t share/fish/vendor_completions.d/$t.fish; do
		[ -s "$root/$f" ] || fail "missing $root/$f"
	done
	[ -x "$root/bin/$t" ] || fail "$t is not executable"
	# Built with the Swift standard library linked statically: no RUNPATH/RPATH but SwiftPM's
	# $ORIGIN (none into the toolchain) and no libswift*.so needed, so the install works
	# without a toolchain.
	if readelf -d "$root/bin/$t" | grep -E '\((RUNPATH|RPATH)\)' | grep -v 'path: \[\$ORIGIN\]$'; then fail "$t has a RUNPATH outside \$ORIGIN"; fi
	if readelf -d "$root/bin/$t" | grep -E 'NEEDED.*libswift|NEEDED.*libFoundation|NEEDED.*libdispatch'; then fail "$t needs the Swift runtime's shared libraries"; fi
	"$root/bin/$t" --version >/dev/null || fail "$t --version failed"
	# Man page and --help agree: the same long options (from the same parser, but the
	# installed page must not be stale). Subcommand options count for gmemctl.
	help_options=$( { "$root/bin/$t" --help; if [ "$t" = gmemctl ]; then
		# every subcommand that --help lists (two-space indent, then a lower-case word)
		for s in $("$root/bin/$t" --help | sed -n '/^SUBCOMMANDS:/,$p' | grep -oE '^  [a-z][a-z-]+' | tr -d ' '); do
			"$root/bin/$t" "$s" --help
		done; fi; } |
		grep -E -- '^  (-[a-zA-Z], )?--[a-z]' | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u)
	man_options=$(grep -E '^\.It Fl' "$root/share/man/man1/$t.1" | grep -oE -- '[ ,]-[a-z][a-z0-9-]+' | sed 's/^[ ,]-/--/' | sort -u)
	[ "$help_options" = "$man_options" ] || fail "$t: --help and $t.1 differ: $(diff <(echo "$help_options") <(echo "$man_options") | tr '\n' ' ')"
	grep -q "^.Dt $(echo "$t" | tr a-z A-Z) 1" "$root/share/man/man1/$t.1" || fail "$t.1 has no .Dt header"
	# A finished page: no empty input line (man's "mdoc warning"), the sections a reader
	# looks for, docs at their installed place.
	! grep -n '^$' "$root/share/man/man1/$t.1" || fail "$t.1 has empty lines"
	for section in '.Sh EXIT STATUS' '.Sh EXAMPLES' '.Sh SEE ALSO'; do
		grep -qx "$section" "$root/share/man/man1/$t.1" || fail "$t.1 has no $section"
	done
	grep -q '/usr/local/share/doc/gmemfs/semantics.md' "$root/share/man/man1/$t.1" || grep -q '/usr/local/share/doc/gmemfs/tutorial.md' "$root/share/man/man1/$t.1" || fail "$t.1 does not point at the installed docs"
	if command -v man >/dev/null; then
		warnings=$(MANWIDTH=80 man -l "$root/share/man/man1/$t.1" 2>&1 >/dev/null) || true
		[ -z "$warnings" ] || fail "man $t warns: $warnings"
	fi
	bash -c ". '$root/share/bash-completion/completions/$t' && complete -p $t" >/dev/null || fail "bash completion of $t does not load"
	[ -s "$root/share/doc/gmemfs/semantics.md" ] || fail "docs not installed"
	head -1 "$root/share/zsh/site-functions/_$t" | grep -q "^#compdef $t" || fail "zsh completion of $t has no #compdef"
	grep -q "^complete -c .$t" "$root/share/fish/vendor_completions.d/$t.fish" || fail "fish completion of $t"
done

# gmemfs(1) documents no subcommand (it has none) and an fstab line.
! grep -qE '^\.Ar subcommand$|^\.It Em help$' "$root/share/man/man1/gmemfs.1" || fail "gmemfs.1 lists a subcommand"
grep -q 'fuse.gmemfs' "$root/share/man/man1/gmemfs.1" || fail "gmemfs.1 has no fstab line"
# Bash completion completes paths where paths go: gmemfs DIR<TAB>, gmemctl map FILE<TAB>.
mkdir -p "$destdir/complete/dir1"; : >"$destdir/complete/file1"
complete_word() {   # complete_word TOOL ARGS...: the candidates for the last of ARGS
	bash -c '
		. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		fn=$(complete -p "$1" | sed "s/.* -F \([^ ]*\).*/\1/")
		"$fn" "$1" "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$root/share/bash-completion/completions/$1" "$@"   # COMP_WORDS: TOOL ARGS...
}
[ "$(complete_word gmemfs "$destdir/complete/d")" = "$destdir/complete/dir1" ] || fail "gmemfs DIR<TAB> does not complete the directory"
complete_word gmemctl map "$destdir/complete/f" | grep -qx "$destdir/complete/file1" || fail "gmemctl map FILE<TAB> does not complete the file"
complete_word gmemfs -o exit_w | grep -qx exit_with_parent || fail "gmemfs -o does not complete its words"
complete_word gmemctl trace --events conv | grep -qx convert || fail "gmemctl trace --events does not complete event kinds"
rm -r "$destdir/complete"

# The test kits, from the installed copy: the shell kit mounts with the installed gmemfs, and
# the Python package installs with pip into a venv and runs a pytest with its fixture.
for f in share/gmemfs/gmemfs-test.sh share/gmemfs/python/pyproject.toml share/gmemfs/python/gmemfs_testing/pytest_plugin.py; do
	[ -s "$root/$f" ] || fail "missing $root/$f"
done
kit=$(GMEMFS=$root/bin/gmemfs TMPDIR=$destdir bash -c ". '$root/share/gmemfs/gmemfs-test.sh'; gmemfs_up --file vm:8K:init-shared && printf hi | dd of=\"\$GMEMFS_MNT/vm\" conv=notrunc status=none && head -c 2 \"\$GMEMFS_MNT/vm\"; gmemfs_down") ||
	fail "the installed shell kit failed: $kit"
[ "$kit" = hi ] || fail "the installed shell kit read '$kit'"
python3 -m venv --system-site-packages "$destdir/venv" || fail "python3 -m venv failed (python3-venv)"
"$destdir/venv/bin/python" -m pip install --quiet --no-index "$root/share/gmemfs/python" ||
	fail "pip install of the installed Python package failed"
mkdir "$destdir/pytests"
cat > "$destdir/pytests/test_installed.py" <<'PY'
from gmemfs_testing import P, attributes, convert

def test_x(gmemfs):
    m = gmemfs("--file", "vm:64K")
    convert(m.file("vm"), 0, P, "shared")
    assert attributes(m.file("vm"))[0] == (0, P, "shared")
PY
out=$(cd "$destdir/pytests" && GMEMFS=$root/bin/gmemfs TMPDIR=$destdir "$destdir/venv/bin/python" -m pytest -q -p no:cacheprovider 2>&1) ||
	fail "pytest with the installed package failed: $out"
rm -rf "$destdir/venv" "$destdir/pytests"

# What a newcomer does after installing: mount -t fuse.gmemfs with the installed binary,
# gmemctl --json, and (the release daemon makes it quick) a 400,000-range map read with wc -l
# from .maps/NAME, which no single xattr value can hold.
mnt=$destdir/mnt
mkdir "$mnt"
cat > "$destdir/alternate.py" <<'PY'
import os, sys
# Pages 0, 2, ..., 399998 of a private file made shared: 400,000 ranges.
for page in range(0, 400000, 2):
    os.setxattr(sys.argv[1], "user.gmem.set_attributes", b"%d 4096 shared" % (page * 4096))
PY
out=$(unshare --mount --propagation private /bin/bash -c "
	set -euo pipefail
	trap 'while mountpoint -q \"$mnt\"; do umount -l \"$mnt\"; done' EXIT
	mount --bind '$root/bin' /usr/local/bin
	mount -t fuse.gmemfs gmemfs '$mnt' -o file=vm:1G:mmap,file=big:2G,guest_view
	gmemctl convert shared '$mnt/vm' 0 4K >/dev/null
	gmemctl stats --json '$mnt/vm' | python3 -m json.tool
	python3 '$destdir/alternate.py' '$mnt/big'
	echo \"maps lines: \$(wc -l < '$mnt/.maps/big')\"
	# retried while EBUSY (a reader of the mount may not have let go yet)
	for _ in \$(seq 50); do umount '$mnt' 2>/dev/null && exit 0; sleep 0.1; done
	umount '$mnt'
") || fail "mount -t fuse.gmemfs with the installed gmemfs failed: $out"
echo "$out" | grep -q '"shared_bytes": 4096' || fail "unexpected gmemctl stats --json output: $out"
echo "$out" | grep -q '^maps lines: 400000$' || fail "a 400,000-range map did not read as 400,000 lines: $(echo "$out" | grep maps)"

rm "$destdir/alternate.py"
DESTDIR=$destdir PREFIX=/usr/local Scripts/install.sh --uninstall >/dev/null
left=$(find "$destdir" -type f)
[ -z "$left" ] || fail "--uninstall left: $left"
echo "test-install: ok (install, static Swift runtime, the installed shell kit and Python package, man pages = --help, completions, mount -t fuse.gmemfs, --json, a 400,000-line .maps file, uninstall)"
