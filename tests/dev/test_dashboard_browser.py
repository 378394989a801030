"""The dashboard in a real browser: an installed Chromium (see chromium.py), driven by
Playwright, headless.

Never skipped: without a Chromium this test fails, saying what to install (`make test` installs
Debian's chromium where apt-get can).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium import MISSING, find_chromium
from dev_support import Dev

# Not build/: a `build` folder in the repository root shadows the `build` package
# (`python -m build` then fails with "'build' is a package and cannot be directly executed").
SCREENSHOT = Path(__file__).resolve().parents[2] / ".screenshots" / "dashboard.png"


@pytest.fixture
def browser_page() -> Iterator[object]:
    chromium = find_chromium()
    if chromium is None:
        pytest.fail(MISSING)
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="holdfast-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=chromium,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                viewport={"width": 1400, "height": 900},
            )
            try:
                yield context.new_page()
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_dashboard_shows_invocations_segments_and_tasks_live(
    dev: Dev, browser_page: object
) -> None:
    from playwright.sync_api import Page, expect

    page = browser_page
    assert isinstance(page, Page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.goto(f"{dev.url}/_holdfast")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    # The init row from the start is in the snapshot.
    expect(page.locator('[data-testid=invocation][data-kind="init"]')).to_have_count(1)

    # Requests made while the page is open arrive through server-sent events.
    assert dev.json("/") == {"version": "one"}
    assert dev.json("/after") == {"after": True}
    task_id = dev.json("/double?n=5", "POST")["id"]  # type: ignore[index]
    assert dev.json("/leak") == {"leak": True}

    rows = page.locator('[data-testid=invocation][data-kind="http"]')
    expect(rows).to_have_count(4)
    after_row = rows.filter(has_text="/after")
    expect(after_row).to_have_attribute("data-outcome", "frozen")
    # Two segments: the response, then the work after it (0.3 s of BackgroundTask).
    expect(after_row.locator(".seg-response")).to_have_count(1)
    segment = after_row.locator(".seg-after")
    expect(segment).to_have_count(1)
    assert "after the response" in (segment.get_attribute("title") or "")
    # Rows are re-rendered as events arrive: read the widths from the markup, not the layout.
    response_width, after_width = (
        float((after_row.locator(s).get_attribute("style") or "").split("width:")[1].rstrip("%"))
        for s in (".seg-response", ".seg-after")
    )
    assert after_width > response_width
    expect(after_row.locator(".freeze")).to_have_count(1)
    # Work left running at the freeze is named, with where it started.
    leak_row = rows.filter(has_text="/leak")
    left = leak_row.locator("[data-testid=left-running]")
    expect(left).to_have_count(2)
    expect(left.first).to_contain_text("mailer")
    expect(left.last).to_contain_text("poll_forever")
    expect(left.last).to_contain_text("app.py:")

    task = page.locator(f'[data-testid=task][data-id="{task_id}"]')
    expect(task).to_have_attribute("data-state", "succeeded", timeout=30_000)
    expect(task).to_contain_text(f"/tasks/{task_id}")

    assert errors == []  # the page's script ran without an error
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
