"""Find what ``holdfast run MODULE:ATTR`` runs: an Adapter, an ASGI or WSGI app, or a handler.

ASGI and WSGI apps are wrapped in a :class:`holdfast.Adapter` (whose lifespan startup runs here,
at init); a ``holdfast.Adapter`` is used as it is; any other ``handler(event, context)``
function, plain or ``async``, is called as it is, like the managed runtime would.

Failures become :class:`InitError` s carrying the ``Runtime.*`` error types AWS's Python runtime
reports (``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``, ...).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

from holdfast.adapter import Adapter
from holdfast.runtime.report import ErrorReport

HandlerFunction = Callable[[Any, Any], Any]
# Parameter names that give a two-argument callable away as a WSGI app, not a Lambda handler.
_WSGI_NAMES = frozenset({"environ", "env", "start_response"})


class InitError(Exception):
    """The function could not be loaded; ``report`` is what goes to ``/runtime/init/error``."""

    def __init__(self, report: ErrorReport) -> None:
        super().__init__(f"{report.error_type}: {report.message}")
        self.report = report


class Target:
    """What the runtime invokes: exactly one of ``adapter`` and ``handler`` is set."""

    __slots__ = ("adapter", "handler")

    def __init__(
        self, *, adapter: Adapter | None = None, handler: HandlerFunction | None = None
    ) -> None:
        if (adapter is None) == (handler is None):
            raise TypeError("a Target is either an adapter or a handler")
        self.adapter = adapter
        self.handler = handler

    @property
    def is_async(self) -> bool:
        """Whether ``handler`` is a coroutine function (or an object with an async call)."""
        call = getattr(self.handler, "__call__", None)  # noqa: B004 - callable objects too
        return inspect.iscoroutinefunction(self.handler) or inspect.iscoroutinefunction(call)


def load(spec: str) -> Target:
    """Import ``MODULE:ATTR`` (``ATTR`` may be dotted) and decide how to run it."""
    module_name, attr = _split(spec)
    module = _import(module_name)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InitError(
                ErrorReport.runtime(
                    "HandlerNotFound", f"Handler '{attr}' missing on module '{module_name}'"
                )
            ) from None
    return _target(obj, spec)


def _split(spec: str) -> tuple[str, str]:
    module_name, sep, attr = spec.partition(":")
    if not sep:
        # The managed runtime's "module.function" spelling (what _HANDLER usually holds).
        module_name, sep, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise InitError(
            ErrorReport.runtime(
                "MalformedHandlerName", f"Bad handler '{spec}': expected MODULE:ATTR"
            )
        )
    return module_name.replace("/", "."), attr


def _import(module_name: str) -> Any:
    if module_name.split(".")[0] in sys.builtin_module_names:
        message = f"Cannot use built-in module {module_name} as a handler module"
        raise InitError(ErrorReport.runtime("BuiltInModuleConflict", message))
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        message = f"Unable to import module '{module_name}': {exc}"
        raise InitError(ErrorReport.runtime("ImportModuleError", message)) from exc
    except SyntaxError as exc:
        message = f"Syntax error in module '{module_name}': {exc}"
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise InitError(ErrorReport.runtime("UserCodeSyntaxError", message, trace)) from exc
    except Exception as exc:
        # The module raised while importing: the function's own failure, reported as AWS does.
        raise InitError(ErrorReport.from_exception(exc, "Runtime")) from exc


def _target(obj: Any, spec: str) -> Target:
    if isinstance(obj, Adapter):
        return Target(adapter=obj)
    if not callable(obj):
        message = f"Handler '{spec}' is a {type(obj).__name__}, not an app or a function"
        raise InitError(ErrorReport.runtime("HandlerNotFound", message))
    kind = _kind(obj)
    if kind == "handler":
        return Target(handler=obj)
    try:
        adapter = Adapter(wsgi=obj) if kind == "wsgi" else Adapter(obj)
    except Exception as exc:
        # Lifespan startup failed (LifespanError), or a setting from the environment is invalid.
        raise InitError(ErrorReport.from_exception(exc, "Runtime")) from exc
    return Target(adapter=adapter)


def _kind(obj: Any) -> str:
    """``asgi``, ``wsgi`` or ``handler``, from the callable's positional parameters."""
    try:
        parameters = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return "asgi"  # a C-level callable: ASGI apps are the likelier kind
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return "asgi"
    call = obj if inspect.isroutine(obj) else getattr(obj, "__call__", obj)  # noqa: B004
    if inspect.iscoroutinefunction(call):
        return "handler"
    names = {p.name for p in positional}
    if names & _WSGI_NAMES or hasattr(obj, "wsgi_app"):
        return "wsgi"
    return "handler"
