"""The public API is what ``__all__`` says, and every error holdfast raises on purpose shares one
base class."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import holdfast
from holdfast import errors

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(holdfast.__path__, "holdfast.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_every_name_in_all_exists(name):
    module = importlib.import_module(name)
    missing = [item for item in getattr(module, "__all__", ()) if not hasattr(module, item)]
    assert missing == []


def test_the_package_exports_resolve_and_are_listed():
    assert sorted(holdfast.__all__) == sorted(dir(holdfast))
    for item in holdfast.__all__:
        assert getattr(holdfast, item) is not None


def test_holdfast_errors_share_one_base():
    assert holdfast.HoldfastError is errors.HoldfastError
    for item in errors.__all__:
        value = getattr(errors, item)
        if inspect.isclass(value):
            assert issubclass(value, holdfast.HoldfastError), item


def test_the_errors_a_user_can_meet_are_holdfast_errors():
    from holdfast.coldstart import ColdStartError
    from holdfast.runtime.client import RuntimeAPIError
    from holdfast.runtime.context import ContextError
    from holdfast.runtime.loader import InitError
    from holdfast.tasks.errors import TaskError

    for error in (InitError, RuntimeAPIError, ContextError, ColdStartError, TaskError):
        assert issubclass(error, holdfast.HoldfastError), error
