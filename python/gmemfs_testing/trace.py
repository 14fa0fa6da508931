"""A reader of ``MOUNTPOINT/.trace`` (docs/trace.md) that can wait for an event."""
import os
import queue
import threading
import time
from dataclasses import dataclass, field


@dataclass
class TraceEvent:
    """One trace line: ``TIME FILE EVENT START-END PID COMM OUTCOME DURATION [KEY=VALUE...]``."""
    time: float
    file: str
    event: str
    start: int
    end: int
    pid: object          # int, or None for '-'
    comm: str
    outcome: str
    duration: str
    detail: dict = field(default_factory=dict)
    line: str = ''

    @classmethod
    def parse(cls, line):
        """A TraceEvent, or None for a line that is not an event (``lost N events``)."""
        f = line.split()
        if len(f) < 8 or '-' not in f[3]:
            return None
        s, e = f[3].split('-', 1)
        detail = dict(kv.split('=', 1) for kv in f[8:] if '=' in kv)
        return cls(float(f[0]), f[1], f[2], int(s, 16), int(e, 16), None if f[4] == '-' else int(f[4]),
                   f[5], f[6], f[7], detail, line)


class TraceReader:
    """Reads the events that happen after it is opened. Use as a context manager or call
    ``close()``.

        with TraceReader(mount.path) as trace:
            convert(mount.file('vm'), 0, 4096, 'private')
            e = trace.wait_for('convert', file='vm')
            assert e.outcome == 'became-private'

    A read of ``.trace`` waits until there is an event (the file has no poll), so a daemon
    thread reads and ``wait_for`` waits on what it has read. A read still waiting when the
    reader is closed ends with the next event or the unmount.
    """

    def __init__(self, mountpoint):
        self._file = open(os.path.join(mountpoint, '.trace'), 'rb', buffering=0)
        self._lines = queue.Queue()
        self._closed = threading.Event()
        self.seen = []
        threading.Thread(target=self._pump, args=(self._file,), daemon=True, name='gmemfs-trace').start()

    def _pump(self, f):
        pending = b''
        while not self._closed.is_set():
            try:
                chunk = f.read(1 << 16)
            except (OSError, ValueError):
                break
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b'\n')
            for raw in lines:
                self._lines.put(raw.decode(errors='replace'))
        try:
            f.close()
        except OSError:   # the mount is gone
            pass
        self._lines.put(None)

    def close(self):
        self._closed.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def wait_for(self, event=None, timeout=10.0, **fields):
        """The first event (read from now on) whose kind is ``event`` (a name, or a predicate
        taking a TraceEvent) and whose attributes equal ``fields`` (e.g. ``file='vm'``,
        ``outcome='became-private'``). Raises TimeoutError after ``timeout`` seconds, EOFError
        when the trace ended (unmounted)."""
        def matches(e):
            if callable(event):
                if not event(e):
                    return False
            elif event is not None and e.event != event:
                return False
            return all(getattr(e, k) == v for k, v in fields.items())

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(0.0, left))
            except queue.Empty:
                raise TimeoutError(f'no trace event {event!r} {fields} within {timeout} s') from None
            if line is None:
                self._lines.put(None)
                raise EOFError('the trace ended (unmounted)')
            e = TraceEvent.parse(line)
            if e is None:
                continue
            self.seen.append(e)
            if matches(e):
                return e
