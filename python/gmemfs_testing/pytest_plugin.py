"""The gmemfs pytest plugin (entry point ``pytest11``: active once the package is installed).

    def test_something(gmemfs):
        m = gmemfs("--file", "vm:1M:mmap,init-shared")   # any gmemfs options
        m.convert("vm", 0, 4096, "private")
        with m.pin("vm", 4096, 4096):
            ...

``gmemfs(*options)`` mounts on a fresh temporary directory, waits until the mount is live and
returns a ``Mount``. Every mount is unmounted when the test ends, pass or fail; a failed test
gets the daemon's log in its report. $GMEMFS names the binary (default: gmemfs from PATH).

A killed pytest (SIGKILL, or a CI timeout's SIGTERM) runs no teardown: the daemon is started with
--exit-with-parent, so it unmounts and exits when pytest ends, and a watcher in its own session
removes the mount's directory once the mount is gone.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from . import ops
from .trace import TraceReader

GMEMFS = os.environ.get("GMEMFS", "gmemfs")


# Run in its own session by each mount: ends once the directory is gone (the fixture's
# teardown), or, if pytest dies first, waits up to 20 s for the mount to go (the daemon ends
# with pytest) and removes the directory; never while it still holds a mount.
_WATCHER = r"""
import os, shutil, sys, time
parent, directory = int(sys.argv[1]), sys.argv[2]
def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
while alive(parent) and os.path.isdir(directory):
    time.sleep(0.2)
mnt = os.path.join(directory, "mnt")
for _ in range(100):
    if not os.path.ismount(mnt):
        shutil.rmtree(directory, ignore_errors=True)
        break
    time.sleep(0.2)
"""


class Mount:
    """A live gmemfs mount: ``path``, ``pid``, ``log_path``, ``log()``, ``file(name)``, ``stop()``,
    and the package's helpers on its files by name: ``create``, ``convert``, ``attributes``,
    ``pin``, ``inject``, ``stats``, ``trace()``."""

    def __init__(self, options):
        self.dir = tempfile.mkdtemp(prefix="gmemfs-test.")
        self.watcher = None
        try:
            self._start(options)
        except BaseException:
            self.remove()
            raise

    def _start(self, options):
        gmemfs = os.environ.get("GMEMFS", GMEMFS)
        self.path = os.path.join(self.dir, "mnt")
        self.log_path = os.path.join(self.dir, "gmemfs.log")
        self.pid = None
        os.mkdir(self.path)
        pid_file = os.path.join(self.dir, "pid")
        with open(self.log_path, "wb") as log:
            # -f: the daemon stays our child and logs to the file; the pid file appears once
            # the mount is live.
            self.process = subprocess.Popen(
                [gmemfs, "-f", "--exit-with-parent", "--pid-file", pid_file, *options, self.path],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, str(os.getpid()), self.dir],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.process.poll() is None:
            if os.path.exists(pid_file):
                with open(pid_file) as f:
                    self.pid = int(f.read())
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gmemfs did not mount on {self.path}:\n{self.log()}")

    def file(self, name):
        return os.path.join(self.path, name)

    # The helpers of gmemfs_testing on a file of this mount, by name.
    def create(self, name, size, flags=()):
        return ops.create(self.path, name, size, flags)

    def convert(self, name, offset, size, to, via="xattr"):
        ops.convert(self.file(name), offset, size, to, via)

    def attributes(self, name, start=None, end=None):
        return ops.attributes(self.file(name), start, end)

    def pin(self, name, offset, size):
        return ops.pin(self.file(name), offset, size)

    def inject(self, name, spec):
        ops.inject(self.file(name), spec)

    def stats(self, name):
        return ops.stats(self.file(name))

    def trace(self):
        """A TraceReader of this mount's events from now on."""
        return TraceReader(self.path)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        """Unmounts (SIGTERM unmounts cleanly; SIGKILL and a lazy unmount after 10 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if os.path.ismount(self.path):
            subprocess.run(["fusermount3", "-u", "-z", self.path], check=False)
        return self.process.returncode

    def remove(self):
        """Removes the directory (after ``stop()``); its watcher then ends."""
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.watcher is not None:
            self.watcher.wait()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "gmemfs_" + report.when, report)


@pytest.fixture
def gmemfs(request):
    mounts = []

    def mount(*options):
        m = Mount(options)
        mounts.append(m)
        return m

    yield mount
    failed = getattr(request.node, "gmemfs_call", None) is None or request.node.gmemfs_call.failed
    for m in mounts:
        status = m.stop()
        if failed:
            print(f"--- gmemfs log ({m.log_path}, exit {status}) ---\n{m.log()}")
        m.remove()
