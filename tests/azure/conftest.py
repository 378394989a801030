"""Fixtures for the Azure tests: one Azurite per test session, a fresh queue and table per test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import azurite
import pytest

from holdfast.tasks import TaskQueue
from task_support import isolated_registry


@pytest.fixture(autouse=True)
def _clean_registry():
    yield from isolated_registry()


@pytest.fixture(scope="session")
def azurite_connection():
    emulator = azurite.start()
    try:
        yield emulator.connection_string
    finally:
        emulator.stop()


@dataclass
class Storage:
    """One test's storage queue, poison queue and status table in Azurite."""

    connection: str
    queue_name: str
    table: str

    def url(self, **options: object) -> str:
        query = "".join(f"&{key}={value}" for key, value in options.items())
        return f"azure://{self.queue_name}?table={self.table}&wait=0.2{query}"

    def queue_client(self, name: str | None = None):
        from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

        return QueueClient.from_connection_string(
            self.connection,
            name or self.queue_name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )

    def peek(self, name: str | None = None) -> list[str]:
        client = self.queue_client(name)
        return [m.content for m in client.peek_messages(max_messages=32)]

    @property
    def poison(self) -> str:
        return f"{self.queue_name}-poison"

    def task_queue(self, **kwargs: object) -> TaskQueue:
        queue = TaskQueue(self.url(), **kwargs)  # type: ignore[arg-type]
        queue.backend.create()  # type: ignore[attr-defined]
        return queue


@pytest.fixture
def storage(azurite_connection, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", azurite_connection)
    suffix = uuid.uuid4().hex[:12]
    return Storage(azurite_connection, f"tasks-{suffix}", f"status{suffix}")
