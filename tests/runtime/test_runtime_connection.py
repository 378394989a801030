"""The Runtime API connection's wait for an answer: in the socket while the event loop is
quiet, and never in the way of anything else the loop has to do (a timer, a thread calling
into the loop — SIGTERM's route —, another socket the loop watches)."""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
import threading

import pytest
import syscalls

from holdfast.runtime.connection import Connection

pytestmark = pytest.mark.timeout(30)


class CountingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The loop's selector, counting its turns (each turn of the loop selects once)."""

    turns = 0

    def select(self, timeout=None):
        self.turns += 1
        return super().select(timeout)


@pytest.fixture(scope="module")
def poll_number():
    return syscalls.poll_number()


def run(scenario, *, debug=False):
    """``await scenario(loop, selector, connection, peer)``: the connection's other end is
    ``peer``, a plain blocking socket the test writes the "answer" to."""
    selector = CountingSelector()
    loop = asyncio.SelectorEventLoop(selector)
    loop.set_debug(debug)
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    try:
        connection = Connection(ours, loop)
        return loop.run_until_complete(scenario(loop, selector, connection, peer))
    finally:
        ours.close()
        peer.close()
        loop.close()


class OnceInPoll:
    """Run ``action`` in a thread as soon as the calling (loop) thread sits in ``poll`` (or,
    failing that within the deadline, anyway: the test then fails on `seen`)."""

    def __init__(self, poll_number: str, action) -> None:
        self.seen: str | None = None
        self._tid = threading.get_native_id()
        self._poll_number = poll_number
        self._action = action
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.seen = syscalls.until(
                lambda: syscalls.current(os.getpid(), self._tid),
                lambda number: number == self._poll_number,
            )
        except AssertionError as exc:
            self.seen = str(exc)
        finally:
            self._action()

    def join(self) -> str | None:
        self._thread.join(syscalls.DEADLINE)
        return self.seen


def answered_in_poll(poll_number, answer, before=None):
    """Read a line that ``answer(loop, peer)`` sends from another thread once the loop thread
    waits in ``poll`` (``before(loop, peer)`` runs first); the line, the system call the
    thread was seen in, and the turns the loop took meanwhile."""

    async def scenario(loop, selector, connection, peer):
        if before is not None:
            before(loop, peer)
        turns = selector.turns
        answering = OnceInPoll(poll_number, lambda: answer(loop, peer))
        line = await connection.reader.readline()
        return line, answering.join(), selector.turns - turns

    return run(scenario)


def test_an_answer_is_awaited_in_the_socket_without_a_turn_of_the_loop(poll_number):
    line, seen, turns = answered_in_poll(
        poll_number, lambda loop, peer: peer.sendall(b"HTTP/1.1 202\r\n")
    )
    assert line == b"HTTP/1.1 202\r\n"
    assert seen == poll_number  # the loop thread waited in poll...
    assert turns == 0  # ...and the loop never turned for the answer


def test_a_timer_due_during_the_wait_ends_it():
    async def scenario(loop, selector, connection, peer):
        # After-response work waiting on a timer: the wait lasts only until the timer is due.
        loop.call_later(0.01, peer.sendall, b"from a timer\n")
        return await connection.reader.readline()

    assert run(scenario) == b"from a timer\n"


def test_a_timer_years_away_does_not_break_the_wait(poll_number):
    # poll's timeout has a ceiling (about 25 days): the wait is capped as the loop's select is.
    line, seen, _ = answered_in_poll(
        poll_number,
        lambda loop, peer: peer.sendall(b"answer\n"),
        before=lambda loop, peer: loop.call_later(10**9, peer.sendall, b"never\n"),
    )
    assert line == b"answer\n"
    assert seen == poll_number


def test_a_thread_calling_into_the_loop_ends_the_wait(poll_number):
    # A thread calling in (the Managed Instances drain, a thread pool's result) goes through
    # call_soon_threadsafe, which must run although the loop thread waits in the socket.
    line, seen, _ = answered_in_poll(
        poll_number, lambda loop, peer: loop.call_soon_threadsafe(peer.sendall, b"x\n")
    )
    assert line == b"x\n"
    assert seen == poll_number


def test_another_socket_the_loop_watches_ends_the_wait(poll_number):
    # After-response work waiting on its own I/O is not starved by the wait.
    async def scenario(loop, selector, connection, peer):
        theirs, relay_peer = socket.socketpair()
        theirs.setblocking(False)

        async def relay():
            peer.sendall(await loop.sock_recv(theirs, 100))

        task = loop.create_task(relay())
        await asyncio.sleep(0)  # the relay now waits on the loop for its socket
        incoming = OnceInPoll(poll_number, lambda: relay_peer.sendall(b"relayed\n"))
        try:
            line = await connection.reader.readline()
            await task
        finally:
            theirs.close()
            relay_peer.close()
        return line, incoming.join()

    line, seen = run(scenario)
    assert line == b"relayed\n"
    assert seen == poll_number


def test_callbacks_ready_run_before_the_socket_is_waited_for():
    async def scenario(loop, selector, connection, peer):
        order = []
        loop.call_soon(order.append, "callback")
        loop.call_soon(peer.sendall, b"answer\n")
        line = await connection.reader.readline()
        order.append("answer read")
        return line, order

    line, order = run(scenario)
    assert line == b"answer\n"
    assert order == ["callback", "answer read"]


def test_a_closed_peer_ends_the_stream():
    async def scenario(loop, selector, connection, peer):
        loop.call_later(0.01, peer.shutdown, socket.SHUT_WR)
        with pytest.raises(asyncio.IncompleteReadError):
            await connection.reader.readexactly(1)

    run(scenario)


def test_in_debug_mode_the_loop_does_the_waiting():
    # asyncio's debug mode reports a callback that blocks as slow: no wait in the socket there.
    async def scenario(loop, selector, connection, peer):
        peer_thread = threading.Thread(target=peer.sendall, args=(b"answer\n",))
        loop.call_later(0.01, peer_thread.start)
        turns = selector.turns
        line = await connection.reader.readline()
        peer_thread.join()
        return line, selector.turns - turns

    line, turns = run(scenario, debug=True)
    assert line == b"answer\n"
    assert turns >= 1
