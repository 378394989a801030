"""The lines `holdfast dev` prints: one per invocation, coloured when the terminal shows colour.

12:01:02.345  POST /work  202  12.3 ms response  + 301.5 ms after  ❄ frozen 12:01:02.659
  ⚠ still running at the freeze: thread 'mailer' started at app.py:42 in signup
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from .timeline import Entry

_CODES = {
    "dim": "2",
    "bold": "1",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}
HINT_LEFT_RUNNING = (
    "it stays frozen until the next request: hand it to holdfast.after_response() or a "
    "TaskQueue (see docs/dev.md)"
)


def wants_colour(stream: TextIO, choice: str = "auto") -> bool:
    """Colour for `stream`: `always`, `never`, or `auto` (a terminal, and no NO_COLOR)."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(os.environ.get("FORCE_COLOR")) or stream.isatty()


class Console:
    """Writes `holdfast dev`'s own lines to `stream` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, *, colour: str = "auto") -> None:
        self._stream = stream or sys.stderr
        self._colour = wants_colour(self._stream, colour)

    def paint(self, text: str, *styles: str) -> str:
        """`text` in the given styles, when colour is on."""
        if not self._colour or not styles:
            return text
        codes = ";".join(_CODES[style] for style in styles)
        return f"\033[{codes}m{text}\033[0m"

    def say(self, message: str, *styles: str) -> None:
        """One line of holdfast dev's own."""
        self._write(self.paint("holdfast dev: ", "dim") + self.paint(message, *styles))

    def error(self, message: str, hint: str | None = None) -> None:
        """A failure, with an optional hint on the next line."""
        self._write(self.paint("holdfast dev: ", "dim") + self.paint(message, "red", "bold"))
        if hint:
            self._write(self.paint(f"  hint: {hint}", "yellow"))

    def invocation(self, entry: Entry) -> None:
        """The line for one finished invocation (and one per piece of work left running)."""
        if entry.kind == "init" and entry.outcome != "frozen":
            return  # a failed start is said once, with its trace and hint (StartError)
        self._write(self.format(entry))
        for item in entry.left_running:
            self._write(
                self.paint("  ⚠ still running at the freeze: ", "yellow", "bold")
                + f"{item.kind} {item.name!r} started at "
                + self.paint(item.where, "bold")
                + (self.paint(f"  ({item.code})", "dim") if item.code else "")
            )
        if entry.left_running:
            self._write(self.paint(f"    {HINT_LEFT_RUNNING}", "dim"))

    def format(self, entry: Entry) -> str:
        """The invocation's line, without a newline."""
        parts = [self.paint(_clock(entry.started_at), "dim")]
        if entry.kind == "http":
            parts.append(self.paint(f"{entry.method} {entry.path}", "bold"))
            parts.append(self._status(entry))
        elif entry.kind == "init":
            parts.append(self.paint("init", "bold"))
        else:
            parts.append(self.paint("invoke", "bold"))
            ok = entry.error_type is None
            parts.append(self.paint("ok", "green") if ok else self.paint("error", "red"))
        if entry.response_ms is not None:
            parts.append(f"{entry.response_ms:.1f} ms response")
        if entry.post_response_ms is not None:
            parts.append(self.paint(f"+ {entry.post_response_ms:.1f} ms after", "cyan"))
        parts.append(self._ending(entry))
        if entry.cold and entry.init_ms is not None:
            parts.append(self.paint(f"cold {entry.init_ms:.0f} ms", "magenta"))
        if entry.error_type:
            parts.append(self.paint(entry.error_type, "red"))
        return "  ".join(part for part in parts if part)

    def _status(self, entry: Entry) -> str:
        if entry.status is None:
            return self.paint("---", "red")
        colour = {2: "green", 3: "cyan", 4: "yellow"}.get(entry.status // 100, "red")
        return self.paint(str(entry.status), colour, "bold")

    def _ending(self, entry: Entry) -> str:
        if entry.outcome == "frozen" and entry.drain_cut:
            what = ", ".join(entry.cut) or f"{entry.spilled} task(s)"
            spilled = f"; {entry.spilled} spilled to the queue" if entry.spilled else ""
            return self.paint(
                f"✂ cut by the deadline: {what}{spilled}  ❄ frozen {_clock(entry.frozen_at)}",
                "red",
                "bold",
            )
        if entry.outcome == "frozen":
            return self.paint(f"❄ frozen {_clock(entry.frozen_at)}", "blue")
        if entry.drain_cut:
            return self.paint("✂ after-response work cut by the deadline (reset)", "red", "bold")
        if entry.outcome == "timeout":
            return self.paint("⏱ timed out (reset)", "red", "bold")
        if entry.outcome == "exit":
            return self.paint("✖ the runtime exited (reset)", "red", "bold")
        if entry.outcome == "init_error":
            return self.paint("✖ init failed", "red", "bold")
        return self.paint(entry.outcome, "dim")

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()


def _clock(epoch: float | None) -> str:
    if epoch is None:
        return "--:--:--.---"
    return time.strftime("%H:%M:%S", time.localtime(epoch)) + f".{int(epoch % 1 * 1000):03d}"
