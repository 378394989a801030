"""Mutation testing of holdfast's modules: is a fault in the code caught by the in-process tests?

    .venv/bin/python tests/mutation.py MODULE [MODULE ...] [--tests TEST ...] [--jobs 2]
        [--list] [--lines N ...] [--per-test-timeout S]

MODULE is a dotted name (``holdfast.pending``) or a path (``src/holdfast/pending.py``). Without
``--tests`` each module runs the tests named for it in ``TESTS`` (the in-process tests that
exercise it, fast and targeted ones first).

One change at a time: a comparison flipped (``==``/``!=``, ``<``/``>=``, ``<=``/``>``,
``in``/``not in``, ``is``/``is not``), a statement removed (replaced by ``pass``; docstrings,
``...``, imports, asserts and the statements at module or class level are left alone), an
integer or float constant moved by one (+1 and -1), a boolean constant negated. Each mutant
runs in a child forked from a parent that has imported the libraries once: the child runs the
mutated module in the module's own namespace (and rebinds every ``from module import name`` of
it elsewhere in holdfast; a mutated class's methods are set on the class object the rest of
holdfast holds, so a subclass defined in another module inherits them), then runs pytest with
``-x`` and a short per-test timeout, so a fault that would hang fails fast; a child past its
whole deadline (a few times the unmutated run) is killed and counts as caught. A constant
copied elsewhere at import (a class attribute set from another module's constant) keeps its
unmutated value there: pin such a constant where it is defined too.
Tests that start other processes run the unmutated code from disk, so they cannot catch a
mutant: name in-process tests. The worktree is never written.

A mutant is *caught* when the tests fail. Survivors are listed with their line for a human to
judge; those judged equivalent (no behaviour can show the change) are listed in ``EQUIVALENT``
with a one-line reason, printed, and left out of the score.
"""

from __future__ import annotations

import argparse
import ast
import copy
import enum
import importlib
import inspect
import os
import signal
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_ADAPTER_TESTS = [
    "tests/adapter/test_adapter_core_pins.py",
    "tests/adapter/test_adapter_closing_pins.py",
    "tests/adapter/test_adapter_invocation.py",
    "tests/adapter/test_adapter_responses.py",
    "tests/adapter/test_adapter_errors.py",
    "tests/adapter/test_adapter_lifecycle.py",
    "tests/adapter/test_adapter_wsgi.py",
]
# The helpers' own pins first; the hypothesis suites (fuzz, properties) are left out: a
# surviving mutant would cost a minute of them each.
_SOURCES_TESTS = [
    "tests/adapter/test_sources_fast_paths.py",
    "tests/adapter/test_sources_pins.py",
    "tests/adapter/test_codec_pins.py",
    "tests/adapter/test_adapter_sources.py",
    "tests/adapter/test_adapter_scope.py",
    "tests/adapter/test_context_headers.py",
    "tests/adapter/test_adapter_security.py",
    "tests/adapter/test_adapter_responses.py",
    "tests/adapter/test_adapter_differential.py",
    "tests/lwa/test_lwa_events.py",
    "tests/lwa/test_lwa_rewrite.py",
    "tests/adapter/test_adapter_errors.py",
    "tests/adapter/test_adapter_inputs.py",
]
#: The tests each module (or package, by prefix) is measured against; the longest prefix wins.
TESTS: dict[str, list[str]] = {
    "holdfast": _ADAPTER_TESTS,
    "holdfast.sources": _SOURCES_TESTS,
    "holdfast.sources.azure": [
        "tests/adapter/test_sources_pins.py",
        "tests/adapter/test_codec_pins.py",
        "tests/azure/test_azure_http.py",
        "tests/adapter/test_adapter_sources.py",
    ],
    "holdfast.pending": [
        "tests/adapter/test_pending_pins.py",
        "tests/adapter/test_adapter_core_pins.py",
        "tests/adapter/test_adapter_invocation.py",
        "tests/adapter/test_adapter_lifecycle.py",
        "tests/adapter/test_adapter_errors.py",
    ],
    "holdfast.bridge": [
        "tests/adapter/test_adapter_core_pins.py",
        "tests/adapter/test_adapter_security.py",  # response header validation
        "tests/adapter/test_adapter_invocation.py",
        "tests/adapter/test_adapter_responses.py",
        "tests/adapter/test_adapter_errors.py",
    ],
    "holdfast.adapter": [*_ADAPTER_TESTS, "tests/hosts/test_hosts_core.py"],
    "holdfast.engine": [
        "tests/adapter/test_adapter_engine.py",
        "tests/adapter/test_adapter_core_pins.py",
        "tests/adapter/test_adapter_invocation.py",
        "tests/adapter/test_adapter_lifecycle.py",
    ],
    "holdfast.dispatch": [
        "tests/adapter/test_adapter_dispatch.py",
        "tests/adapter/test_adapter_invocation.py",
    ],
    "holdfast.adoption": ["tests/adoption", *_ADAPTER_TESTS],
    "holdfast.tasks.executor": [
        "tests/tasks/test_tasks_executor.py",
        "tests/tasks/test_tasks_worker.py",
    ],
}
# Tests that start processes (the emulator, runtimes) run the unmutated code: left out.
DESELECT = (
    "not runtime_keeps_serving and not come_from_the_real_invocation"
    " and not is_a_413_not_a_refused_payload"
)

#: Mutants no behaviour can show, by module: (the function, the mutated line's text stripped,
#: the change) -> why it is equivalent. Keyed by text, not line number, so edits elsewhere do
#: not unpin them.
EQUIVALENT: dict[str, dict[tuple[str, str, str], str]] = {
    "holdfast.pending": {
        **{
            ("__bool__", text, f"remove `{text}`"): "a fast path for work never added to: the "
            "checks after it find nothing either"
            for text in ("if not (self._final or self._handles or self._adopted):", "return False")
        },
        (
            "name_threads_left",
            "if threads.keys() <= self._threads_before:",
            "remove `if threads.keys() <= self._threads_before:`",
        ): "a fast path: the loop after it finds no new thread either",
        (
            "name_threads_left",
            "return []",
            "remove `return []`",
        ): "a fast path: the loop after it finds no new thread either",
        (
            "_wait_for_threads",
            "if deadline is None or self.overrun_grace <= 0:",
            "remove `if deadline is None or self.overrun_grace <= 0:`",
        ): "with no deadline no thread is left running; with no grace the wait times out at once",
        (
            "_wait_for_threads",
            "return",
            "remove `return`",
        ): "with no deadline no thread is left running; with no grace the wait times out at once",
        (
            "_wait_for_threads",
            "if deadline is None or self.overrun_grace <= 0:",
            "constant -1",
        ): "the grace is never negative: at 0 the wait it guards times out at once",
        (
            "_remaining",
            "return None if deadline is None else max(0.0, deadline - loop.time())",
            "constant -1",
        ): "asyncio.wait treats a negative timeout as 0",
        (
            "_spill_for",
            "return None",
            "remove `return None`",
        ): "the function's implicit return is None too",
        (
            "_take_adopted",
            "task.remove_done_callback(self._forget)",
            "remove `task.remove_done_callback(self._forget)`",
        ): "the callback left only pops the task from an adopted set it is no longer in",
    },
    "holdfast.engine": {
        (
            "run_until",
            "_run_ready(loop)",
            "remove `_run_ready(loop)`",
        ): "a fast path: the passes of _run_once that follow run the same callbacks",
        (
            "_run_ready",
            "for _ in range(len(ready)):",
            "remove `for _ in range(len(ready)):`",
        ): "the same fast path emptied: the passes of _run_once run those callbacks",
        **{
            ("step", check, f"remove `{check}`"): "checked twice (before and under the lock): "
            "either check alone keeps a pass with nothing ready from waiting"
            for check in ("if not loop._ready:", "return")
        },
        (
            "run_in_background",
            "while self._waiting:",
            "remove `while self._waiting:`",
        ): "its stepping loop stops while a caller waits too: this only spares a busy retry",
    },
    "holdfast.adapter": {
        **{
            (
                "startup",
                text,
                "remove `if self._started:`" if "if" in text else "remove `return`",
            ): ("a fast path: awaiting the finished startup future answers the same")
            for text in ("if self._started:", "return")
        },
        (
            "start",
            "_watch_for_exit(self)",
            "remove `_watch_for_exit(self)`",
        ): "startup(), called next whenever this line runs, watches the adapter too",
        **{
            ("_watch_for_exit", text, change): "a fast path: adding to the WeakSet again, or "
            "checking the hook again under the lock, changes nothing"
            for text, change in (
                ("if adapter._watched:", "remove `if adapter._watched:`"),
                ("return", "remove `return`"),
                ("adapter._watched = True", "remove `adapter._watched = True`"),
                ("adapter._watched = True", "negate a boolean"),
                ("if _exit_hook_registered:", "remove `if _exit_hook_registered:`"),
            )
        },
        (
            "_close_engine",
            "engine.close()",
            "remove `engine.close()`",
        ): "a loop never made, or closed already, has nothing to close",
        (
            "_can_step",
            "return not engine.loop.is_running()",
            "remove `return not engine.loop.is_running()`",
        ): "closing from a short-lived thread always works as well: it only costs a thread",
        (
            "app_kind",
            "if call is None:",
            "remove `if call is None:`",
        ): "inspect.signature(None) raises TypeError, answered 'asgi' by the next lines",
        **{
            (function, text, "constant +1"): "a longer default bound: a shutdown that ends in "
            "time cannot tell 1 s from 2 s"
            for function, text in (
                ("close", "def close(self, timeout: float = 1.0) -> None:"),
                (
                    "__init__",
                    "self._finalizer = weakref.finalize(self, _close_engine, self.engine,"
                    " self.lifespan, 1.0)",
                ),
            )
        },
    },
    "holdfast.sources.codec": {
        **{
            (method, "raise NotImplementedError", "remove `raise NotImplementedError`"): "the "
            "abstract base's body: every codec overrides it, so it never runs"
            for method in ("_decode", "encode")
        },
    },
    "holdfast.sources.fields": {
        # Its `return value` is as equivalent, but shares its text with the last line's: counted.
        (
            "mapping",
            "if type(value) is dict:",
            "remove `if type(value) is dict:`",
        ): "a fast path: a dict is a Mapping, answered the same by the check after it",
        **{
            ("method_of", text, f"remove `{text}`"): "the cache of checked methods: without it "
            "the method is checked and upper-cased again, to the same answer"
            for text in ("if method is not None:", "return method")
        },
    },
    "holdfast.sources.bodies": {
        **{
            ("is_text_body", text, change): "the cache of content types: without it (or with "
            "a bound one smaller) the type is worked out again, to the same answer"
            for text, change in (
                ("if known is not None:", "remove `if known is not None:`"),
                ("return known", "remove `return known`"),
                ("if len(_text_types_seen) < 256:", "remove `if len(_text_types_seen) < 256:`"),
                ("if len(_text_types_seen) < 256:", "Lt -> GtE"),
                ("if len(_text_types_seen) < 256:", "constant -1"),
                (
                    "_text_types_seen[content_type, extra_text_types] = is_text",
                    "remove `_text_types_seen[content_type, extra_text_types] = is_text`",
                ),
            )
        },
        # split(b";", 2) is as equivalent, but its change is the same as `[1]`'s there: counted.
        (
            "plain_body",
            'return body.encode("ascii") if body.isascii() else None',
            "remove `return body.encode('ascii') if body.isascii() else None`",
        ): "a fast path: a text body then goes the codec's general way, to the same bytes",
    },
    "holdfast.sources.platform": {
        ("_environment_json", "@functools.lru_cache(maxsize=16)", f"constant {change}"): "the "
        "size of the cache of environment templates (one per environment in practice)"
        for change in ("+1", "-1")
    },
    "holdfast.sources.headers": {
        **{
            (function, text, f"remove `{text}`"): "the fast path: the loop after it builds "
            "the same headers, checking each"
            for function in ("headers_from_single", "headers_from_multi")
            for text in ("if known is not None:", "return known")
        },
        **{
            (function, "return None", "remove `return None`"): "the function's implicit "
            "return is None too"
            for function in ("known_headers", "known_multi_headers")
        },
        **{
            ("header_name", text, f"remove `{text}`"): "the cache of checked names: without it "
            "a name is checked and lowered again, to the same answer"
            for text in ("if len(_header_names) < 4096:", "_header_names[name] = key")
        },
        **{
            ("header_name", "if len(_header_names) < 4096:", change): "the name cache never "
            "filled, or bounded one smaller: names are checked again, to the same answer"
            for change in ("Lt -> GtE", "constant -1")
        },
        (
            "find_header",
            "return None",
            "remove `return None`",
        ): "the function's implicit return is None too",
    },
    "holdfast.sources.limits": {
        (
            "",
            "_FRAMING = 512",
            f"constant {change}",
        ): "the bound's allowance for the JSON around the body: the real framing is under "
        "300 bytes, so 511 or 513 bound it as well (it only decides when to serialise)"
        for change in ("+1", "-1")
    }
    | {
        ("_size_bound", "text = 0", f"constant {change}"): "a count of the heads' characters "
        "one off: 12 bytes, well inside the 200 the framing allowance spares"
        for change in ("+1", "-1")
    }
    | {
        ("_size_bound", text, f"constant {change}"): "the heads' punctuation per name, value "
        "or cookie, counted once more or less: the count is multiplied by 12 (every character "
        "as if escaped), so it bounds the real 2 to 8 bytes either way"
        for text in (
            "text += sum(map(len, fields)) + 8 * len(fields)",
            "text += sum(map(len, values)) + 4 * len(values)",
            "text += sum(map(len, cookies)) + 4 * len(cookies)",
        )
        for change in ("+1", "-1")
    }
    | {
        ("", text, "constant +1"): "a looser bound: it only serialises a response more often, "
        "to the same answer"
        for text in ("_MAX_ESCAPED = 12", "_MAX_ESCAPED_ASCII = 6")
    }
    | {
        ("exceeds", text, f"remove `{text}`"): "the bound is a fast path: without it every "
        "response is serialised and measured, to the same answer"
        for text in ("if _size_bound(result) <= limit:", "return False")
    }
    | {
        ("clearly_within", "if size > limit:", change): "an early answer: the sum after it is "
        "larger still, so it says no as well"
        for change in ("remove `if size > limit:`", "Gt -> LtE")
    }
    | {
        ("clearly_within", "return False", "remove `return False`"): "an early answer: the sum "
        "after it is larger still, so it says no as well"
    },
    "holdfast.sources.paths": {
        (function, text, change): "a fast path: with no mount and no base path the loop "
        "after it leaves the root path empty too"
        for function, text, change in (
            ("split_path", "if not (mount or base_path):", "remove `if not (mount or base_path):`"),
            ("split_path", 'return decoded, raw, ""', "remove `return (decoded, raw, '')`"),
            (
                "plain_split",
                "if not (mount or base_path):",
                "remove `if not (mount or base_path):`",
            ),
            ("plain_split", 'return path, raw, ""', "remove `return (path, raw, '')`"),
        )
    },
    "holdfast.sources.query": {
        **{
            ("merged_params", text, change): "a fast path: merging single-value keys the "
            "multi-value form already has gives that form again"
            for text, change in (
                (
                    "if single_form.keys() <= multi_form.keys():",
                    "remove `if single_form.keys() <= multi_form.keys():`",
                ),
                ("return multi_form", "remove `return multi_form`"),
            )
        },
        **{
            ("plain_query", text, change): "a fast path: without it the quoting path builds "
            "the same query (test_sources_fast_paths)"
            for text, change in (
                (
                    "if (",
                    "remove `if _PLAIN_QUERY.fullmatch(text) and text.count('=') == len(p`",
                ),
                ('and text.count("&") == len(pairs) - 1', "constant +1"),
                ("return text", "remove `return text`"),
                ("return None", "remove `return None`"),
            )
        },
        **{
            (function, text, change): "a fast path: no parameters join to the same empty query"
            for function in ("query_from_decoded", "query_from_encoded")
            for text, change in (
                ("if not params:", "remove `if not params:`"),
                ('return b""', "remove `return b''`"),
            )
        },
        **{
            ("as_sent", text, change): "a fast path: quote() keeps visible ASCII as it is "
            "(every punctuation character is safe)"
            for text, change in (
                (
                    "if _VISIBLE_ASCII.fullmatch(text):",
                    "remove `if _VISIBLE_ASCII.fullmatch(text):`",
                ),
                ('return text.encode("ascii")', "remove `return text.encode('ascii')`"),
            )
        },
    },
    "holdfast.sources.lattice": {
        (
            "detect_version",
            "return None",
            "remove `return None`",
        ): "the function's implicit return is None too",
    },
    "holdfast.sources.response_headers": {
        (
            "status_description",
            "_descriptions[status] = description",
            "remove `_descriptions[status] = description`",
        ): "the cache: without it the description is worked out again, the same",
        (
            "_single_values",
            "if len(values) == 1:",
            "constant -1",
        ): "a fast path: one value joined by commas, or one Set-Cookie under the first letter "
        "case (its own), is the same header",
        (
            "_single_values",
            "yield name, values[0]",
            "constant -1",
        ): "values[-1] of a one-value list is values[0]",
    },
    "holdfast.sources.syntax": {
        (
            "",
            "_CONTROLS_MOVED = bytes(byte ^ 0x80 if byte in _CONTROLS else byte for byte in "
            "range(256))",
            f"constant {change}",
        ): "any other non-zero mask moves each control byte elsewhere too"
        for change in ("+1", "-1")
    },
    "holdfast.sources.addresses": {
        (
            "server_address",
            "port = FRONT_PORTS.get(forwarded_port)",
            "remove `port = FRONT_PORTS.get(forwarded_port)`",
        ): "a cache of the parse after it: without it the port is parsed, to the same answer",
        **{
            ("parse_host", "if len(_hosts) < 256:", change): "the Host cache never filled, or "
            "bounded one smaller: a Host header is parsed again, to the same answer"
            for change in ("Lt -> GtE", "constant -1")
        },
        **{
            ("parse_host", text, f"remove `{text}`"): "the cache: without it a Host header is "
            "parsed again, to the same answer"
            for text in (
                "if value in _hosts:",
                "return _hosts[value]",
                "if len(_hosts) < 256:",
                "_hosts[value] = parsed",
            )
        },
        (
            "forwarded_scheme",
            'if proto == b"https":',
            "remove `if proto == b'https':`",
        ): "a fast path: the general branch after it answers https too",
        (
            "forwarded_scheme",
            'return "https"',
            "remove `return 'https'`",
        ): "a fast path: the general branch after it answers https too",
        (
            "client_address",
            "return None",
            "remove `return None`",
        ): "the function's implicit return is None too",
    },
    "holdfast.adoption": {
        **{
            ("_request_task", text, f"remove `{text}`"): "before Python 3.12 the call with "
            "eager_start raises TypeError, and its fallback is the same call as the one skipped"
            for text in ("if not _EAGER:", "return task_class(coro, loop=loop)")
        },
        **{
            ("", "_EAGER = sys.version_info >= (3, 12)", change): "which versions try "
            "eager_start first: where the Task class refuses it, the fallback is the same call "
            "without it, and where it takes it, the task starts as the loop would start it"
            for change in ("constant -1", "constant +1")
        },
        **{
            ("start_request", text, f"remove `{text}`"): "the request's task made without the "
            "factory's frame walk is a fast path: through the factory it is not adopted either "
            "(that branch switches adoption on after the task is made), only not started eagerly"
            for text in (
                "if loop.get_task_factory() is _create_task:",
                "return asyncio.tasks.Task(coro, loop=loop, **_EAGER)",
            )
        },
    },
    "holdfast.bridge": {
        ("_write", "return None", "remove `return None`"): "the function's implicit return is "
        "None too",
        **{
            ("_check_fields", text, change): "the cache of valid header names: without it (or "
            "never filled) a name is checked again, to the same answer"
            for text, change in (
                ("if len(_valid_names) < 1024:", "remove `if len(_valid_names) < 1024:`"),
                ("if len(_valid_names) < 1024:", "Lt -> GtE"),
                ("if len(_valid_names) < 1024:", "constant -1"),
                ("_valid_names.add(name)", "remove `_valid_names.add(name)`"),
            )
        },
        **{
            ("_response_head", text, change): "the C-call check of known names is a fast path: "
            "without it (or never taken) the full conversion gives the same headers"
            for text, change in (
                (
                    "if _valid_names.issuperset(map(_first, raw)) and _PAIRS.issuperset(map(len,"
                    " raw)):",
                    "remove `if _valid_names.issuperset(map(_first, raw)) and _PAIRS.issu`",
                ),
                ("return list(map(tuple, raw))", "remove `return list(map(tuple, raw))`"),
                ("try:", "remove `try:`"),
                (
                    "if _BYTES_ONLY.issuperset(map(type, values)):",
                    "remove `if _BYTES_ONLY.issuperset(map(type, values)):`",
                ),
            )
        },
        **{
            ("", "_first = itemgetter(0)", f"constant {change}"): "the fast path's name check "
            "reads the values instead (never known names: the full conversion) or, from the end,"
            " the same name"
            for change in ("+1", "-1")
        },
        ("", "_PAIRS = frozenset({2})", "constant -1"): "no response header is a 1-tuple: the "
        "fast path is never taken, and the full conversion gives the same headers",
        **{
            ("_follow", "self._following = True", change): "following the app's task again only "
            "adds another callback waking the same waiter (waking is idempotent)"
            for change in ("remove `self._following = True`", "negate a boolean")
        },
        **{
            ("__init__", "self.held = False", change): "read only once start() has set it "
            "(streaming checks started first)"
            for change in ("remove `self.held = False`", "negate a boolean")
        },
    },
    "holdfast.tasks.executor": {
        ("start", "return None", "remove `return None`"): "the function's implicit return is "
        "None too",
        **{
            ("conclude_once", text, f"remove `{text}`"): "a timer left to fire finds the call "
            "concluded already and returns"
            for text in ("if timer is not None:", "timer.cancel()")
        },
        # `slots=False` on Call is as equivalent, but shares its change with `frozen=False`,
        # which a test catches: counted.
    },
    "holdfast.invocation": {
        **{
            ("outcome", text, change): "the app's first step before waiting on futures is a "
            "fast path: the wait after it gives the same outcome (a negative sleep is a zero one)"
            for text, change in (
                ("await asyncio.sleep(0)", "remove `await asyncio.sleep(0)`"),
                ("await asyncio.sleep(0)", "constant -1"),
            )
        },
        (
            "__init__",
            "adopts=False,",
            "negate a boolean",
        ): "the app's own task is created by holdfast's code, which adoption never adopts",
        (
            "drain",
            "await asyncio.sleep(0)",
            "constant -1",
        ): "asyncio.sleep treats a negative delay as 0",
        **{
            ("_take_failed", "failed, self._failed = self._failed, 0", f"constant {change}"): (
                "the count is taken once per invocation (by settle() or by drain()): the value "
                "left behind is never read"
            )
            for change in ("+1", "-1")
        },
        (
            "__init__",
            "self._codec: EventCodec | None = None",
            "remove `self._codec: EventCodec | None = None`",
        ): "read only after _start_http set it (a decode failure decides the outcome first)",
        (
            "_create_task",
            "return task",
            "remove `return task`",
        ): "no caller uses the returned task (it is kept in self.task)",
        (
            "ready",
            "if self._outcome is not None:",
            "remove `if self._outcome is not None:`",
        ): "a fast path: what made the outcome decidable (task done, response complete or "
        "streaming) stays true",
    },
}

#: Imported once by the parent, shared by every forked child (a child then only collects).
PREIMPORTED = (
    "pytest", "hypothesis", "starlette", "fastapi", "flask", "a2wsgi", "httpx",
    "holdfast", "holdfast.adapter", "holdfast.events", "holdfast.tasks",
)  # fmt: skip

_FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


@dataclass(frozen=True)
class Mutant:
    index: int  # the n-th mutation point of the module, in walk order
    line: int
    change: str
    function: str  # the innermost function around it ("" at module level)


def _is_inert(node: ast.stmt) -> bool:
    """A docstring, or the ``...`` of a protocol's method: removing it changes nothing."""
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and (isinstance(node.value.value, str) or node.value.value is Ellipsis)
    )


def _points(tree: ast.Module) -> Iterator[tuple[ast.AST, str, object]]:
    """Every mutation point: ``(node, kind, detail)``, in a stable order."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                if type(op) in _FLIPPED:
                    yield node, "compare", position
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            yield node, "bool", None
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            yield node, "number", +1
            yield node, "number", -1
        if isinstance(node, ast.Module | ast.ClassDef):
            continue  # definitions: removing one only breaks the import
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if isinstance(statements, list):
                for position, statement in enumerate(statements):
                    if not isinstance(statement, ast.stmt) or _is_inert(statement):
                        continue
                    if isinstance(statement, ast.Pass | ast.Import | ast.ImportFrom | ast.Assert):
                        continue  # an assert only states an invariant the code keeps
                    yield node, f"remove:{field}", position


def _functions(tree: ast.Module) -> dict[int, str]:
    """id(node) -> the name of the innermost function holding it."""
    inside: dict[int, str] = {}
    for node in ast.walk(tree):  # breadth first: an inner function overwrites its outer one
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for child in ast.walk(node):
                inside[id(child)] = node.name
    return inside


def mutants(tree: ast.Module) -> list[Mutant]:
    inside = _functions(tree)
    found = []
    for index, (node, kind, detail) in enumerate(_points(tree)):
        line = getattr(node, "lineno", 0)
        if kind == "compare":
            assert isinstance(node, ast.Compare) and isinstance(detail, int)
            op = type(node.ops[detail])
            change = f"{op.__name__} -> {_FLIPPED[op].__name__}"
        elif kind == "bool":
            change = "negate a boolean"
        elif kind == "number":
            change = f"constant {detail:+d}"
        else:
            statement = getattr(node, kind.split(":")[1])[detail]
            line = statement.lineno
            change = f"remove `{ast.unparse(statement).splitlines()[0][:60]}`"
        found.append(Mutant(index, line, change, inside.get(id(node), "")))
    return found


def mutated(tree: ast.Module, index: int) -> ast.Module:
    tree = copy.deepcopy(tree)
    for position, (node, kind, detail) in enumerate(_points(tree)):
        if position != index:
            continue
        if kind == "compare":
            assert isinstance(node, ast.Compare) and isinstance(detail, int)
            node.ops[detail] = _FLIPPED[type(node.ops[detail])]()
        elif kind == "bool":
            assert isinstance(node, ast.Constant)
            node.value = not node.value
        elif kind == "number":
            assert isinstance(node, ast.Constant) and isinstance(detail, int)
            node.value = node.value + detail
        else:
            statements = getattr(node, kind.split(":")[1])
            statements[detail] = ast.copy_location(ast.Pass(), statements[detail])
        return ast.fix_missing_locations(tree)
    raise IndexError(index)


def _functions_of(value: object) -> Iterator[types.FunctionType]:
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    if isinstance(value, property):
        yield from (f for f in (value.fget, value.fset, value.fdel) if f is not None)
    elif isinstance(value, types.FunctionType):
        yield value


def _patch_class(old: type, new: type) -> None:
    """Give the class every other module already holds (their subclasses, their instances) the
    mutated class's methods: rebinding the name alone would leave a subclass defined elsewhere
    inheriting the unmutated ones."""
    for attribute, value in vars(new).items():
        if attribute in ("__dict__", "__weakref__", "__slots__"):
            continue
        if isinstance(value, types.MemberDescriptorType | types.GetSetDescriptorType):
            continue  # the slots: the old class keeps its own, of the same layout
        for function in _functions_of(value):
            names = function.__code__.co_freevars
            if "__class__" in names and function.__closure__:  # zero-argument super()
                function.__closure__[names.index("__class__")].cell_contents = old
        try:
            setattr(old, attribute, value)
        except (AttributeError, TypeError):  # a read-only attribute: the unmutated one stays
            pass


def _install(module_name: str, tree: ast.Module) -> None:
    """Run `tree` in the module's namespace and rebind every import of its names."""
    module = sys.modules[module_name]
    original = dict(module.__dict__)
    exec(compile(tree, module.__file__ or module_name, "exec"), module.__dict__)
    for name, value in list(module.__dict__.items()):
        old = original.get(name)
        if (
            isinstance(old, type)
            and isinstance(value, type)
            and old is not value
            and old.__module__ == module_name
            and not issubclass(old, enum.Enum)
        ):
            _patch_class(old, value)
            module.__dict__[name] = old
    replaced = {
        name: value
        for name, value in module.__dict__.items()
        if name in original and original[name] is not value
    }
    for other in list(sys.modules.values()):
        if other is None or other is module:
            continue
        if not getattr(other, "__name__", "").startswith("holdfast"):
            continue
        namespace = other.__dict__
        for name, value in replaced.items():
            if name in namespace and namespace[name] is original[name]:
                namespace[name] = value


def _run_child(module_name: str, tree: ast.Module, tests: list[str], timeout: float) -> int:
    import pytest

    _install(module_name, tree)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    arguments = [
        *tests,
        "-k",
        DESELECT,
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-p",
        "no:xdist",
        f"--timeout={timeout}",
        "--no-header",
        "--tb=no",
    ]
    return int(pytest.main(arguments))


def _fork(module_name: str, tree: ast.Module, tests: list[str], timeout: float) -> int:
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setpgid(0, 0)  # its own group: a deadline kills whatever the tests started
            code = _run_child(module_name, tree, tests, timeout)
        finally:
            os._exit(code)
    return pid


def _reap(pid: int, deadline: float) -> tuple[bool, int | None]:
    """(finished, exit code): the code is ``None`` when the child was killed at its deadline."""
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        return True, os.waitstatus_to_exitcode(status)
    if time.monotonic() <= deadline:
        return False, None
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    return True, None


def _equivalent(module_name: str, source_lines: list[str], mutant: Mutant) -> str | None:
    # The line's code, without its comment (comments follow two spaces, as ruff formats them).
    text = source_lines[mutant.line - 1].split("  #")[0].strip() if mutant.line else ""
    return EQUIVALENT.get(module_name, {}).get((mutant.function, text, mutant.change))


def tests_for(module_name: str) -> list[str]:
    prefixes = [p for p in TESTS if module_name == p or module_name.startswith(p + ".")]
    return TESTS[max(prefixes, key=len)]


def run(module_name: str, options: argparse.Namespace) -> tuple[int, int]:
    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    lines = source.splitlines()
    tree = ast.parse(source)
    tests = options.tests or tests_for(module_name)
    found = [m for m in mutants(tree) if not options.lines or m.line in options.lines]
    if options.list:
        for mutant in found:
            print(f"{module_name}:{mutant.line}: {mutant.change}")
        return 0, len(found)
    excluded = [(m, why) for m in found if (why := _equivalent(module_name, lines, m))]
    queue = [m for m in found if not _equivalent(module_name, lines, m)]

    started = time.monotonic()
    pid = _fork(module_name, tree, tests, options.per_test_timeout)
    while not (reaped := _reap(pid, started + 900))[0]:
        time.sleep(0.05)
    if reaped[1] != 0:
        raise SystemExit(f"{module_name}: the tests fail without any mutation (exit {reaped[1]})")
    # A child several times slower than the unmutated run is hanging somewhere: caught.
    baseline = time.monotonic() - started
    allowance = max(20.0, 3 * baseline)
    print(
        f"{module_name}: {len(queue)} mutants, the unmutated run took {baseline:.1f} s", flush=True
    )

    caught, survivors = 0, []
    running: dict[int, tuple[Mutant, float]] = {}
    total = len(queue)
    while queue or running:
        while queue and len(running) < options.jobs:
            mutant = queue.pop(0)
            pid = _fork(module_name, mutated(tree, mutant.index), tests, options.per_test_timeout)
            running[pid] = (mutant, time.monotonic() + allowance)
        for pid, (mutant, deadline) in list(running.items()):
            finished, code = _reap(pid, deadline)
            if not finished:
                continue
            del running[pid]
            if code in (0, 5):  # passed, or nothing collected: not caught
                survivors.append(mutant)
            else:
                caught += 1
            if options.verbose:
                verdict = "SURVIVED" if code in (0, 5) else "caught"
                print(f"  {verdict} {module_name}:{mutant.line}: {mutant.change}", flush=True)
        time.sleep(0.05)  # the parent's own loop, waiting on its children
    for mutant, why in excluded:
        print(f"  equivalent {module_name}:{mutant.line}: {mutant.change} -- {why}", flush=True)
    for mutant in sorted(survivors, key=lambda m: m.line):
        print(f"  survived {module_name}:{mutant.line}: {mutant.change}", flush=True)
    return caught, total


def _module_name(given: str) -> str:
    if not given.endswith(".py"):
        return given
    path = Path(given).resolve().relative_to(ROOT / "src").with_suffix("")
    parts = path.parts[:-1] if path.name == "__init__" else path.parts
    return ".".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="+", help="holdfast.pending or src/holdfast/pending.py")
    parser.add_argument("--tests", nargs="*", default=[], help="default: TESTS for the module")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once")
    parser.add_argument("--per-test-timeout", type=float, default=10.0)
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--lines", type=int, nargs="*", default=[], help="only these lines")
    parser.add_argument("--verbose", "-v", action="store_true", help="each verdict as it comes")
    options = parser.parse_args()
    os.chdir(ROOT)
    sys.path[:0] = [str(ROOT / "tests")]
    # Imported once here, shared by every forked child.
    for library in PREIMPORTED:
        try:
            importlib.import_module(library)
        except ImportError:  # an optional extra not installed: the children import what exists
            pass
    totals = []
    for given in options.modules:
        name = _module_name(given)
        caught, total = run(name, options)
        if not options.list:
            score = 100 * caught / total if total else 100.0
            print(f"{name}: {caught}/{total} mutants caught ({score:.0f} %)", flush=True)
        totals.append((caught, total))
    if not options.list and len(totals) > 1:
        caught = sum(c for c, _ in totals)
        total = sum(t for _, t in totals)
        print(f"all: {caught}/{total} mutants caught ({100 * caught / max(total, 1):.0f} %)")


if __name__ == "__main__":
    main()
