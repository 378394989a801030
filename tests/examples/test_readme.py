"""The README's 30-second tour, run as written: its app under `holdfast emulate` + `holdfast run`
pointed at the Adapter object, so the handler's options apply."""

from __future__ import annotations

import re

from shop_support import BIN, ROOT, ShopFunction


def test_the_tour_app_answers_first_and_its_background_task_ends_before_the_freeze(tmp_path):
    readme = (ROOT / "README.md").read_text()
    [app] = [
        block
        for block in re.findall(r"```python\n(.*?)```", readme, re.S)
        if "handler = holdfast.Adapter" in block
    ]
    # The tour's send_receipt is a stub; record that it ran (and when) instead.
    app = app.replace(
        "async def send_receipt() -> None: ...",
        "async def send_receipt() -> None:\n"
        "    import asyncio, pathlib\n"
        "    await asyncio.sleep(0.2)\n"
        f"    pathlib.Path({str(tmp_path / 'receipt')!r}).write_text('sent')\n",
    )
    (tmp_path / "app.py").write_text(app)
    [command] = re.findall(r"\$ holdfast emulate -- (holdfast run \S+)", readme)
    assert command == "holdfast run app:handler"  # the Adapter object, not the bare app
    runtime = [str(BIN / "holdfast"), *command.split()[1:]]
    function = ShopFunction(runtime, {"PATH": str(BIN), "PYTHONUNBUFFERED": "1"}, cwd=tmp_path)
    try:
        answer = function.request("POST", "/orders")
        assert (answer.status, answer.json()) == (202, {"accepted": True})
        assert "Post-Response Duration" in function.report(answer.headers["x-amzn-RequestId"])
        assert (tmp_path / "receipt").read_text() == "sent"  # done before the freeze
    finally:
        function.close()
