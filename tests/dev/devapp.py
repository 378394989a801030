"""The app the `holdfast dev` tests run (copied into a temporary directory as app.py)."""

import asyncio
import os
import threading
import time

from fastapi import BackgroundTasks, FastAPI

import holdfast
from holdfast.tasks import TaskQueue

app = FastAPI()
queue = TaskQueue(os.environ["DEVAPP_QUEUE"])
app.include_router(queue.router(public=True))
VERSION = "one"


@queue.task(name="devapp.double")
async def double(n: int, seconds: float = 0.2) -> int:
    await asyncio.sleep(seconds)
    return n * 2


@app.get("/")
async def index() -> dict[str, str]:
    return {"version": VERSION}


@app.get("/after")
async def after(tasks: BackgroundTasks) -> dict[str, bool]:
    tasks.add_task(asyncio.sleep, 0.3)
    return {"after": True}


@app.get("/leak")
async def leak() -> dict[str, bool]:
    threading.Thread(target=time.sleep, args=(30,), name="mailer", daemon=True).start()
    # Detached: a task the app means to outlive the request, so the drain does not wait for it
    # (holdfast dev still names it, running at the freeze).
    _fire_and_forget.add(holdfast.detach(asyncio.get_running_loop().create_task(poll_forever())))
    return {"leak": True}


@app.get("/hog")
async def hog() -> dict[str, bool]:
    # Not detached: adopted, the drain waits for it until the deadline cuts it.
    _fire_and_forget.add(asyncio.get_running_loop().create_task(poll_forever()))
    return {"hog": True}


_fire_and_forget: set[asyncio.Task[None]] = set()


async def poll_forever() -> None:
    while True:
        await asyncio.sleep(1)


@app.post("/double")
async def defer(n: int = 21, seconds: float = 0.2) -> dict[str, str]:
    handle = await double.defer(n, seconds)
    return {"id": handle.id}


@app.get("/slow-after")
async def slow_after(tasks: BackgroundTasks) -> dict[str, bool]:
    tasks.add_task(asyncio.sleep, 60)
    return {"slow": True}


handler = holdfast.Adapter(app)
