"""``MODULE:ATTR``, the one loader: what ``holdfast run`` runs, and what any other command names.

:func:`resolve` imports the module and walks the (dotted) attribute; :func:`load` then decides
how the runtime invokes it. A ``holdfast.Adapter`` is used as it is, and so is the Adapter the
module already built around an app (``holdfast run module:app`` and ``module:handler`` then
agree: same options, one lifespan startup). Other ASGI and WSGI apps are wrapped in a new
:class:`holdfast.Adapter` (whose lifespan startup runs here, at init; the adapter's own check
tells WSGI from ASGI); any other ``handler(event, context)`` function, plain or ``async``, is
called as it is, like the managed runtime would.

Failures become :class:`InitError` s carrying the ``Runtime.*`` error types AWS's Python runtime
reports (``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``, ...).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

from holdfast.adapter import Adapter, app_kind
from holdfast.errors import HoldfastError
from holdfast.runtime.report import ErrorReport

__all__ = ["HandlerFunction", "InitError", "Target", "load", "resolve", "split_spec"]

HandlerFunction = Callable[[Any, Any], Any]


class InitError(HoldfastError):
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
    module, obj = _resolve(spec)
    return _target(obj, spec, module)


def resolve(spec: str) -> Any:
    """The object ``MODULE:ATTR`` names (``ATTR`` may be dotted); :class:`InitError` says why
    there is none."""
    return _resolve(spec)[1]


def _resolve(spec: str) -> tuple[Any, Any]:
    module_name, attr = split_spec(spec)
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
    return module, obj


def split_spec(spec: str) -> tuple[str, str]:
    """``(module, attribute)`` of ``MODULE:ATTR`` (or the managed runtime's ``module.function``),
    the module dotted; :class:`InitError` (``Runtime.MalformedHandlerName``) when malformed."""
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


def _target(obj: Any, spec: str, module: Any) -> Target:
    if not callable(obj):
        message = f"Handler '{spec}' is a {type(obj).__name__}, not an app or a function"
        raise InitError(ErrorReport.runtime("HandlerNotFound", message))
    adapter = obj if isinstance(obj, Adapter) else _adapter_around(obj, module)
    if adapter is None:
        if app_kind(obj, handlers=True) == "handler":
            return Target(handler=obj)
        try:
            adapter = Adapter(obj)  # ASGI, or WSGI as the adapter recognises it
        except Exception as exc:  # a setting from the environment is invalid
            raise InitError(ErrorReport.from_exception(exc, "Runtime")) from exc
    try:
        adapter.start()  # lifespan startup belongs to the init phase
    except Exception as exc:  # LifespanError
        raise InitError(ErrorReport.from_exception(exc, "Runtime")) from exc
    return Target(adapter=adapter)


def _adapter_around(app: Any, module: Any) -> Adapter | None:
    """The Adapter ``module`` built around ``app``, if it has one at the top level."""
    for value in vars(module).values():
        if isinstance(value, Adapter) and value.given is app:
            return value
    return None
