"""Azurite, the Azure Storage emulator (npm), run by the tests on 127.0.0.1.

`make .azurite/.installed` installs it into the project-local, git-ignored `.azurite/`
(`npm install azurite`); `start()` runs its queue and table services on free ports with
in-memory storage and returns the connection string; `stop()` ends it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / ".azurite" / "node_modules" / ".bin" / "azurite"
# Azurite's well-known development account (public, documented by Microsoft).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    workdir: str
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};"
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start() -> Azurite:
    if not AZURITE.exists():
        raise RuntimeError(f"Azurite is not installed at {AZURITE}: run `make .azurite/.installed`")
    workdir = tempfile.mkdtemp(prefix="holdfast-azurite-")
    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        queue_port, table_port, blob_port = _free_port(), _free_port(), _free_port()
        process = subprocess.Popen(
            [
                str(AZURITE),
                "--silent",
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(blob_port),
                "--queueHost",
                "127.0.0.1",
                "--queuePort",
                str(queue_port),
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                str(table_port),
            ],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        azurite = Azurite(process, workdir, queue_port, table_port)
        if _wait_listening(process, (queue_port, table_port), deadline=time.monotonic() + 30):
            return azurite
        process.kill()
        process.wait()
    shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError("Azurite did not start")


def _wait_listening(
    process: subprocess.Popen[bytes], ports: tuple[int, ...], deadline: float
) -> bool:
    pending = list(ports)
    while pending:
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5):
                pending.pop(0)
        except OSError:
            time.sleep(0.05)
    return True
