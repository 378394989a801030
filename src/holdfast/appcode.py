"""Which code is the app's own: the one rule for adopting tasks and naming threads and tasks.

A file is the app's own when it is a real file that belongs to neither the standard library,
nor an installed distribution (site-packages, or a package with a ``*.dist-info`` beside it in
a plain directory on ``sys.path``, as ``pip install -t`` lays out a Lambda package), nor holdfast
(its demo app excepted). Answers are cached per file name.
"""

from __future__ import annotations

import functools
import os
import sys

__all__ = ["is_app_file"]

_HOLDFAST_ROOT = os.path.dirname(os.path.realpath(__file__))
# The demo lives inside holdfast's package but is an app like any other.
_APP_FILES_IN_HOLDFAST = frozenset({os.path.join(_HOLDFAST_ROOT, "demo.py")})
_app_file: dict[str, bool] = {}
_installed_names: dict[str, frozenset[str]] = {}  # sys.path directory -> its distributions' names


def is_app_file(filename: str) -> bool:
    """Whether ``filename`` is the app's own code: a real file that belongs to neither the
    standard library, nor an installed distribution, nor holdfast (its demo excepted)."""
    known = _app_file.get(filename)
    if known is None:
        known = _is_app_file(filename)
        _app_file[filename] = known
    return known


def _is_app_file(filename: str) -> bool:
    if not filename.startswith("/"):
        return False  # <frozen ...>, <string>: generated, never the app's file on disk
    path = os.path.realpath(filename)
    if path in _APP_FILES_IN_HOLDFAST:
        return True
    if any(path.startswith(root + os.sep) for root in _library_roots()):
        return False
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    return not _installed_beside(path)


def _installed_beside(path: str) -> bool:
    """Whether ``path`` belongs to a distribution installed into a plain directory on
    ``sys.path`` (``pip install -t``: a Lambda package's libraries sit beside the app)."""
    for entry in sys.path:
        root = os.path.realpath(entry or ".")
        if not path.startswith(root + os.sep):
            continue
        top = path[len(root) + 1 :].split(os.sep, 1)[0]
        name = top.removesuffix(".py")
        if name in _distribution_names(root):
            return True
    return False


def _distribution_names(root: str) -> frozenset[str]:
    names = _installed_names.get(root)
    if names is None:
        found: set[str] = set()
        try:
            entries = os.listdir(root)
        except OSError:
            entries = []
        for entry in entries:
            if entry.endswith((".dist-info", ".egg-info")):
                found.update(_top_level(os.path.join(root, entry)))
        names = _installed_names[root] = frozenset(found)
    return names


def _top_level(info: str) -> set[str]:
    try:
        with open(os.path.join(info, "top_level.txt")) as file:
            return {line.strip() for line in file if line.strip()}
    except OSError:
        pass
    try:
        with open(os.path.join(info, "RECORD")) as file:
            tops = {line.split(",", 1)[0].split("/", 1)[0] for line in file}
    except OSError:
        return set()
    return {top.removesuffix(".py") for top in tops if not top.endswith("-info") and top}


@functools.cache
def _library_roots() -> tuple[str, ...]:
    # sysconfig is imported by the first question (a task a request creates), not at init.
    import sysconfig

    return (
        _HOLDFAST_ROOT,
        *{
            os.path.realpath(path)
            for key, path in sysconfig.get_paths().items()
            if key in ("stdlib", "platstdlib", "purelib", "platlib")
        },
    )
