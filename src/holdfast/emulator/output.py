"""What the environment's processes write: passed on to the emulator's own output, and split into
log lines for the Telemetry API.

On Lambda a runtime's stdout and stderr are pipes read by the platform, which turns each line
into a `function` log event (an extension's into an `extension` event). Here each process gets two
pipes; whatever arrives is written straight on to the emulator's stdout / stderr (so the terminal
shows it as before) and its complete lines go to `on_lines`. `drain()` reads what a process has
already written without waiting for the event loop, so the lines a runtime printed before it
called `next` are logged before `platform.runtimeDone`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

LineSink = Callable[[list[str]], None]
# A line longer than this is cut into pieces of this size (Lambda cuts long lines too).
MAX_LINE = 256 * 1024


class OutputPipe:
    """One pipe a child writes into (its write end), read here without blocking."""

    def __init__(self, forward_fd: int, on_lines: LineSink) -> None:
        self._read_fd, self.write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        self._forward_fd = forward_fd
        self._on_lines = on_lines
        self._partial = b""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._read_fd, self.drain)
        self._closed = False

    def child_started(self) -> None:
        """Close the parent's copy of the write end, so the pipe ends when the children do."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def drain(self) -> None:
        """Read everything written so far; pass it on and emit its complete lines."""
        if self._closed:
            return
        while True:
            try:
                data = os.read(self._read_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._finish()
                return
            _forward(self._forward_fd, data)
            self._split(data)

    def _split(self, data: bytes) -> None:
        buffered = self._partial + data
        *lines, self._partial = buffered.split(b"\n")
        while len(self._partial) > MAX_LINE:
            lines.append(self._partial[:MAX_LINE])
            self._partial = self._partial[MAX_LINE:]
        if lines:
            self._on_lines([line.rstrip(b"\r").decode("utf-8", "replace") for line in lines])

    def _finish(self) -> None:
        if self._partial:
            self._on_lines([self._partial.decode("utf-8", "replace")])
            self._partial = b""
        self.close()

    def close(self) -> None:
        """Stop reading and release the pipe."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._read_fd)
        os.close(self._read_fd)
        self.child_started()


def _forward(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]


class ProcessOutput:
    """The stdout and stderr pipes of one process."""

    def __init__(self, on_lines: LineSink) -> None:
        self.stdout = OutputPipe(1, on_lines)
        self.stderr = OutputPipe(2, on_lines)

    def child_started(self) -> None:
        """See `OutputPipe.child_started`."""
        self.stdout.child_started()
        self.stderr.child_started()

    def drain(self) -> None:
        """See `OutputPipe.drain`."""
        self.stdout.drain()
        self.stderr.drain()

    def close(self) -> None:
        """Read what is left, then stop."""
        self.drain()
        self.stdout.close()
        self.stderr.close()
