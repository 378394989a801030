"""Which Chromium the dashboard's browser test drives: one that is installed, never a download.

Looked for in this order: ``$HOLDFAST_CHROMIUM``; ``chromium``, ``chromium-browser``,
``google-chrome``, ``google-chrome-stable`` on ``PATH`` (Debian's ``/usr/bin/chromium`` among
them); macOS's Chromium and Google Chrome apps; the Chromium Playwright installed
(``python -m playwright install chromium``, under ``$PLAYWRIGHT_BROWSERS_PATH`` when set).

``python tests/dev/chromium.py`` prints the one found, or says what is missing and exits 1
(``make test`` runs it before installing anything).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MAC_APPS = (
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
MISSING = (
    "no Chromium for the dashboard's browser test: install Chromium or Google Chrome "
    "(Debian/Ubuntu: apt-get install chromium; macOS: brew install --cask chromium), or "
    "`.venv/bin/python -m playwright install chromium`, or set HOLDFAST_CHROMIUM=/path/to/it"
)


def find_chromium(environ: dict[str, str] | None = None) -> str | None:
    """The path of an installed Chromium (or Chrome), or None."""
    env = dict(os.environ) if environ is None else environ
    explicit = env.get("HOLDFAST_CHROMIUM")
    if explicit:
        return explicit if _executable(explicit) else None
    search = env.get("PATH", os.defpath)
    for name in NAMES:
        found = shutil.which(name, path=search)
        if found:
            return found
    for app in MAC_APPS:
        if _executable(app):
            return app
    return _playwrights(env)


def _playwrights(env: dict[str, str]) -> str | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    saved = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if env.get("PLAYWRIGHT_BROWSERS_PATH"):
        os.environ["PLAYWRIGHT_BROWSERS_PATH"] = env["PLAYWRIGHT_BROWSERS_PATH"]
    try:
        with sync_playwright() as playwright:
            path = playwright.chromium.executable_path
    except Exception:  # no driver, no browser: nothing installed
        return None
    finally:
        if saved is None:
            os.environ.pop("PLAYWRIGHT_BROWSERS_PATH", None)
        else:
            os.environ["PLAYWRIGHT_BROWSERS_PATH"] = saved
    return path if _executable(path) else None


def _executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


if __name__ == "__main__":
    found = find_chromium()
    if found is None:
        given = os.environ.get("HOLDFAST_CHROMIUM")
        print(
            f"HOLDFAST_CHROMIUM={given} is not an executable" if given else MISSING, file=sys.stderr
        )
        sys.exit(1)
    print(found)
