"""Background slices give way to a task woken by I/O (the batch in flight's next statement)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from consumers.ledger.turns import give_way


async def _order(yield_between_slices: Callable[[], Awaitable[None]]) -> list[str]:
    """A waiting task reads one byte from a socket, as asyncpg waits for PostgreSQL's answer; the
    answer arrives while a background slice runs."""
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    order: list[str] = []

    async def waiting() -> None:
        await reader.readexactly(1)
        order.append("answer handled")

    async def background() -> None:
        for index in range(4):
            if index == 1:
                theirs.send(b"x")  # the answer arrives during slice 1
            order.append(f"slice {index}")
            await yield_between_slices()

    try:
        await asyncio.gather(waiting(), background())
    finally:
        writer.close()
        theirs.close()
    return order


async def _one_turn() -> None:
    await asyncio.sleep(0)


def test_an_answer_that_arrives_during_a_slice_is_handled_before_the_next_slice() -> None:
    order = asyncio.run(_order(give_way))
    assert order.index("answer handled") == order.index("slice 1") + 1, order


def test_one_turn_of_the_loop_lets_the_next_slice_run_first() -> None:
    """Why give_way yields more than once: with a single turn the next slice runs before the
    woken task (so this test pins the behaviour the module works around)."""
    order = asyncio.run(_order(_one_turn))
    assert order.index("answer handled") > order.index("slice 2"), order
