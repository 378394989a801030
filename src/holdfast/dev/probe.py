"""Inside the function's process under `holdfast dev`: note the threads and asyncio tasks the
app's own code starts, so that work still running when the environment freezes can be named,
with where it began.

``python -m holdfast.dev.probe MODULE:ATTR`` installs the notes, then runs ``holdfast run``.
Each start and each end is one JSON line appended with a single ``write(2)`` on an
``O_APPEND`` descriptor to the file named by ``$HOLDFAST_DEV_PROBE``: whatever was written
before the freeze is in the file once the process is stopped, so ``holdfast dev`` reads it
after the freeze without asking the frozen process anything. Only threads and tasks created
with a frame of the app's own code on the stack are noted (the rule of
:func:`holdfast.appcode.is_app_file`: not the standard library's, an installed library's or
holdfast's), so a framework's internal tasks stay out of it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import sys
import threading
from collections.abc import Coroutine, Generator
from types import FrameType
from typing import Any

from holdfast.appcode import is_app_file

PROBE_ENV = "HOLDFAST_DEV_PROBE"

_ids = itertools.count(1)


def user_origin(frame: FrameType | None) -> dict[str, Any] | None:
    """Where the innermost frame of the app's own code on this stack is, if there is one."""
    while frame is not None:
        code = frame.f_code
        if is_app_file(code.co_filename):
            line = frame.f_lineno
            return {
                "file": os.path.relpath(code.co_filename),
                "line": line,
                "function": code.co_name,
                "code": _source_line(code.co_filename, line),
            }
        frame = frame.f_back
    return None


def _source_line(filename: str, line: int) -> str:
    import linecache

    return linecache.getline(filename, line).strip()


class _Notes:
    """The append-only file the notes go to."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._pid = os.getpid()
        self._pgid = os.getpgid(0)

    def write(self, note: dict[str, Any]) -> None:
        note.update(pid=self._pid, pgid=self._pgid)
        try:
            os.write(self._fd, (json.dumps(note) + "\n").encode())
        except OSError:  # a full disk must not break the app
            pass


def install(path: str) -> None:
    """Note the threads and asyncio tasks the app starts from now on, in the file `path`."""
    notes = _Notes(path)
    _note_threads(notes)
    _note_tasks(notes)
    _note_drains(notes)


def _note_threads(notes: _Notes) -> None:
    original_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        origin = user_origin(sys._getframe(1))
        if origin is not None:
            note_id = next(_ids)
            run = self.run

            def run_and_note_end() -> None:
                try:
                    run()
                finally:
                    notes.write({"event": "end", "id": note_id})

            self.run = run_and_note_end  # type: ignore[method-assign]
            notes.write(
                {"event": "start", "id": note_id, "kind": "thread", "name": self.name, **origin}
            )
        original_start(self)

    threading.Thread.start = start  # type: ignore[method-assign]


def _note_tasks(notes: _Notes) -> None:
    # The event loop creates tasks through `asyncio.tasks.Task` (unless a task factory is set):
    # a subclass there sees every task the app creates, on any loop.
    class NotedTask(asyncio.Task):  # type: ignore[type-arg]
        def __init__(
            self,
            coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any],
            **kwargs: Any,
        ) -> None:
            super().__init__(coro, **kwargs)
            origin = user_origin(sys._getframe(1))
            if origin is not None:
                note_id = next(_ids)
                name = getattr(coro, "__qualname__", None) or self.get_name()
                note = {"event": "start", "id": note_id, "kind": "task", "name": name}
                notes.write({**note, **origin})
                self.add_done_callback(lambda _: notes.write({"event": "end", "id": note_id}))

    asyncio.tasks.Task = NotedTask  # type: ignore[misc]


def _note_drains(notes: _Notes) -> None:
    # After-response work the drain had to cut (cancelled, or spilled to the queue) because
    # the invocation's deadline was near: the dashboard shows it as a drain cut by the deadline.
    try:
        from holdfast.pending import PendingWork

        drain = PendingWork.drain
    except (ImportError, AttributeError):  # noting cut drains is a nicety: never block the app
        return

    async def noted_drain(self: PendingWork, timeout: float | None) -> Any:
        report = await drain(self, timeout)
        cancelled = list(getattr(report, "cancelled", []))
        # Work in threads past the deadline runs on, frozen mid-work: named as cut too.
        cancelled += [f"{item} (overrun: still running)" for item in getattr(report, "overrun", [])]
        spilled = int(getattr(report, "spilled", 0))
        if cancelled or spilled:
            notes.write({"event": "drain_cut", "cancelled": cancelled, "spilled": spilled})
        return report

    PendingWork.drain = noted_drain  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    """Install the notes (when `$HOLDFAST_DEV_PROBE` names a file), then run the runtime."""
    args = sys.argv[1:] if argv is None else argv
    path = os.environ.get(PROBE_ENV)
    if path:
        install(path)
    # holdfast dev says an init failure itself, once, with the app's frames and a hint: the
    # runtime's own line (what CloudWatch shows on Lambda) would repeat it.
    logging.getLogger("holdfast").addFilter(_without_init_failed)
    from holdfast.runtime.cli import main as run

    return run(args)


def _without_init_failed(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("init failed:")


if __name__ == "__main__":
    sys.exit(main())
