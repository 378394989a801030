"""Work left running at the freeze: read the notes `holdfast.dev.probe` writes in the function.

The notes file is read forward only. At an invocation's dispatch every note so far is taken in
(the runtime is waiting in ``next`` then, so notes up to here came before the invocation); the
threads and tasks noted from then on belong to the invocation. At the freeze the rest is read:
what started during the invocation and has no end note is still running, frozen mid-work.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LeftOver:
    """A thread or asyncio task an invocation started that was still running at the freeze."""

    kind: str  # "thread" or "task"
    name: str
    file: str
    line: int
    function: str
    code: str

    @property
    def where(self) -> str:
        """`file:line in function`."""
        return f"{self.file}:{self.line} in {self.function}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "kind": self.kind,
            "name": self.name,
            "where": self.where,
            "code": self.code,
        }


@dataclass
class Findings:
    """What the notes say of one invocation once it ended."""

    left_running: list[LeftOver]
    cut: list[str]  # after-response work the drain cancelled as the deadline neared
    spilled: int  # after-response tasks the drain moved to the durable queue instead


class LeftOvers:
    """Tracks the probe's notes per process group (one per execution environment)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._current: dict[int, str] = {}  # pgid -> request id of the running invocation
        # (pid, note id) -> (request id, what started)
        self._running: dict[tuple[int, int], tuple[str, LeftOver]] = {}
        self._cuts: dict[str, tuple[list[str], int]] = {}

    def invocation_started(self, pgid: int | None, request_id: str) -> None:
        """An invocation was dispatched to the environment whose process group is `pgid`."""
        self._read()
        if pgid is not None:
            self._current[pgid] = request_id

    def invocation_ended(self, pgid: int | None, request_id: str) -> Findings:
        """The invocation ended (frozen or reset): what it started that is still running, and
        what its drain had to cut."""
        self._read()
        if pgid is not None and self._current.get(pgid) == request_id:
            del self._current[pgid]
        keys = [key for key, (owner, _) in self._running.items() if owner == request_id]
        cut, spilled = self._cuts.pop(request_id, ([], 0))
        return Findings([self._running.pop(key)[1] for key in keys], cut, spilled)

    def _read(self) -> None:
        try:
            with open(self.path, "rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # a line still being written (never, with one write each)
        for line in lines:
            try:
                self._take(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue

    def _take(self, note: dict[str, Any]) -> None:
        owner = self._current.get(int(note["pgid"]))
        if note["event"] == "drain_cut":
            if owner is not None:
                cut, spilled = self._cuts.get(owner, ([], 0))
                cancelled = [str(item) for item in note["cancelled"]]
                self._cuts[owner] = ([*cut, *cancelled], spilled + int(note["spilled"]))
            return
        key = (int(note["pid"]), int(note["id"]))
        if note["event"] == "end":
            self._running.pop(key, None)
            return
        if owner is None:  # started during init or between invocations: not an invocation's
            return
        self._running[key] = (
            owner,
            LeftOver(
                kind=str(note["kind"]),
                name=str(note["name"]),
                file=str(note["file"]),
                line=int(note["line"]),
                function=str(note["function"]),
                code=str(note.get("code", "")),
            ),
        )

    def close(self) -> None:
        """Remove the notes file."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
