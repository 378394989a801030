"""Fixtures for the HTTP/1.1 wire tests."""

import logging
from collections.abc import Iterator

import pytest
from http11_support import Complaints, Served, echo


@pytest.fixture
def serve() -> Iterator:
    """`serve(handler=echo, **options)` starts a server; all are closed after the test."""
    started: list[Served] = []

    def start(handler=echo, **options) -> Served:
        served = Served(handler, **options)
        started.append(served)
        return served

    yield start
    for served in started:
        served.close()


@pytest.fixture
def complaints() -> Iterator[Complaints]:
    """What the server (or asyncio) logged as a problem during the test."""
    handler = Complaints()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


@pytest.fixture(scope="module")
def served_once() -> Iterator[tuple[Served, Complaints]]:
    """One server for a whole module (a hypothesis test sends it many requests), with what it
    logged as a problem."""
    handler = Complaints()
    root = logging.getLogger()
    root.addHandler(handler)
    served = Served(echo, head_timeout=10, body_timeout=10)
    yield served, handler
    served.close()
    root.removeHandler(handler)
