"""JSON-only encoding of task arguments and results.

Arguments are validated when a task is deferred, so a bad call fails in the caller, not
minutes later in a worker. With pydantic importable, parameter annotations are honoured both
ways (a `datetime` travels as an ISO string and arrives as a `datetime`); without it, every
value must survive a plain JSON round trip unchanged. Nothing is ever pickled.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .errors import InvalidArguments


@functools.cache
def _pydantic() -> ModuleType | None:
    # Imported on first need, not with the package: it is a cold-start cost on Lambda.
    try:
        import pydantic
        import pydantic_core  # noqa: F401 - to_jsonable_python below
    except ImportError:  # pragma: no cover - pydantic is optional
        return None
    return pydantic


def _jsonable_or_raise(value: Any) -> Any:
    if _pydantic() is None:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    import pydantic_core

    return pydantic_core.to_jsonable_python(value)


# Encoders built once: json.dumps() with options builds a new one on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_RESULT_ENCODER = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, default=_jsonable_or_raise
)
EMPTY_PAYLOAD = "[[],{}]"


def dumps(value: Any) -> str:
    """Compact JSON text; NaN and infinities are refused (they are not JSON)."""
    return _ENCODER.encode(value)


def dump_payload(args: list[Any], kwargs: dict[str, Any]) -> str:
    """`[args, kwargs]` as JSON text, the stored form of a call."""
    return dumps([args, kwargs]) if args or kwargs else EMPTY_PAYLOAD


def load_payload(text: str) -> tuple[list[Any], dict[str, Any]]:
    """The inverse of `dump_payload`; raises ValueError on anything else."""
    if text == EMPTY_PAYLOAD:
        return [], {}
    args, kwargs = json.loads(text)
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError("expected [args, kwargs]")
    return args, kwargs


#: The deepest nesting of lists and objects an argument may have. Far below the interpreter's
#: recursion limit, so encoding never depends on how deep the caller's stack happens to be.
MAX_DEPTH = 200


def check_depth(value: Any, what: str, *, outer: int = 0) -> None:
    """Raise InvalidArguments when lists, tuples and dicts nest deeper than `MAX_DEPTH`
    (not counting the `outer` levels that only wrap the arguments, such as the args list).

    Iterative: a value nested far past the recursion limit is refused, not a RecursionError.
    """
    pending = [(value, 1 - outer)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise InvalidArguments(f"{what} is nested deeper than {MAX_DEPTH} levels")
        pending.extend((child, depth + 1) for child in children)


def check_json(value: Any, what: str, *, outer: int = 0) -> Any:
    """Return `value` if it survives a JSON round trip unchanged, else raise InvalidArguments."""
    check_depth(value, what, outer=outer)
    try:
        same = json.loads(dumps(value)) == value
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArguments(f"{what} is not JSON: {exc}") from None
    if not same:
        raise InvalidArguments(f"{what} changes in a JSON round trip ({type(value).__name__})")
    return value


def encode_result(value: Any) -> str:
    """The task's return value as JSON text; pydantic models, datetimes, UUIDs are converted."""
    if value is None:  # most tasks return nothing
        return "null"
    return _RESULT_ENCODER.encode(value)


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        # Unresolvable string annotations: fall back to treating the parameters as unannotated.
        return inspect.signature(fn)


class _Param:
    """How one parameter's values are checked and converted."""

    __slots__ = ("adapter", "kind", "name")

    def __init__(self, parameter: inspect.Parameter) -> None:
        self.name = parameter.name
        self.kind = parameter.kind
        annotation = parameter.annotation
        usable = annotation is not inspect.Parameter.empty and not isinstance(annotation, str)
        pydantic = _pydantic() if usable else None
        self.adapter = pydantic.TypeAdapter(annotation) if pydantic is not None else None

    def encode(self, value: Any) -> Any:
        if self.kind is inspect.Parameter.VAR_POSITIONAL:
            return [self._encode_one(item) for item in value]
        if self.kind is inspect.Parameter.VAR_KEYWORD:
            return {key: self._encode_one(item) for key, item in value.items()}
        return self._encode_one(value)

    def decode(self, value: Any) -> Any:
        if self.adapter is None:
            return value
        if self.kind is inspect.Parameter.VAR_POSITIONAL:
            return tuple(self.adapter.validate_python(item) for item in value)
        if self.kind is inspect.Parameter.VAR_KEYWORD:
            return {key: self.adapter.validate_python(item) for key, item in value.items()}
        return self.adapter.validate_python(value)

    def _encode_one(self, value: Any) -> Any:
        what = f"argument {self.name!r}"
        if self.adapter is None:
            return check_json(value, what)
        check_depth(value, what)
        try:
            jsonable = self.adapter.dump_python(self.adapter.validate_python(value), mode="json")
        except _validation_error() as exc:
            raise InvalidArguments(f"{what}: {_first_error(exc)}") from None
        except (ValueError, RecursionError) as exc:  # pydantic's "depth exceeded" and the like
            raise InvalidArguments(f"{what} cannot be encoded: {exc}") from None
        # dump_python(mode="json") can still yield NaN; the final dumps() must not fail later.
        return check_json(jsonable, what)


def _validation_error() -> type[Exception]:
    pydantic = _pydantic()
    return ValueError if pydantic is None else pydantic.ValidationError


def _first_error(exc: Exception) -> str:
    pydantic = _pydantic()
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        errors = exc.errors()
        return str(errors[0].get("msg", exc)) if errors else str(exc)
    return str(exc)


class ArgumentCodec:
    """Validates a task's arguments at defer time and rebuilds them at run time."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._signature = _signature(fn)
        self._params: dict[str, _Param] | None = None

    def encode(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """JSON-ready (args, kwargs) for storage; raises InvalidArguments."""
        if not args and not kwargs and not self._signature.parameters:
            return [], {}
        bound = self._bind(args, kwargs)
        params = self._param_map()
        for name, value in bound.arguments.items():
            bound.arguments[name] = params[name].encode(value)
        return list(bound.args), dict(bound.kwargs)

    def decode(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Call-ready (args, kwargs) from stored JSON values; raises InvalidArguments."""
        if not args and not kwargs and not self._signature.parameters:
            return (), {}
        bound = self._bind(tuple(args), kwargs)
        params = self._param_map()
        try:
            for name, value in bound.arguments.items():
                bound.arguments[name] = params[name].decode(value)
        except _validation_error() as exc:
            raise InvalidArguments(f"argument {name!r}: {_first_error(exc)}") from None
        return bound.args, bound.kwargs

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        try:
            return self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(str(exc)) from None

    def _param_map(self) -> dict[str, _Param]:
        # Built lazily: TypeAdapter construction is the costly part and many tasks take no args.
        if self._params is None:
            self._params = {
                name: _Param(parameter) for name, parameter in self._signature.parameters.items()
            }
        return self._params
