"""The store's Redis client packs commands with hiredis (service/store/client.py): the same bytes as redis-py's
own packer, its fallbacks for what hiredis refuses, and a real round trip through it."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from service.settings import Settings
from service.store.client import connect_redis, hiredis_packing
from service.store.window_store import SessionWindowStore
from service.store.window_values import ClickIds

COMMANDS = [
    ("EVALSHA", "a" * 40, 2, "si:v1:{s}:w", "si:v1:{s}:m", b"\x00\xff digest", 3, 1_765_000_000_123, "0", "é", -5),
    ("ZADD", "si:v1:{atrisk}", 0.1, "s", 1 / 3, "t", 1e-7, "u", float("inf"), "v"),
    ("SCRIPT LOAD", "return 1"),  # a name with a space: redis-py's packer splits it
    ("SET", "k", memoryview(b"value")),  # hiredis takes no memoryview: redis-py's packer
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_the_packed_bytes_are_redis_pys(command: tuple[object, ...]) -> None:
    ours, theirs = hiredis_packing(Connection)(), Connection()
    assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command))


def test_a_bool_is_refused_as_redis_py_refuses_it() -> None:
    with pytest.raises(DataError):
        hiredis_packing(Connection)().pack_command("SET", "k", True)


def test_the_service_client_uses_it_for_tcp_and_unix_sockets() -> None:
    tcp = connect_redis("redis://127.0.0.1:1", Settings()).connection_pool.connection_class
    unix = connect_redis("unix:///tmp/none.sock", Settings()).connection_pool.connection_class
    assert issubclass(tcp, Connection) and tcp is not Connection
    assert issubclass(unix, UnixDomainSocketConnection) and unix is not UnixDomainSocketConnection


async def test_a_click_goes_through_it(redis_url: str) -> None:
    client = connect_redis(redis_url, Settings())
    try:
        store = SessionWindowStore(client)
        first = await store.append_event("s-pack", "e1", 3, 1_765_000_000.0, False, body="3:1765000000000:0",
                                         ids=ClickIds(item="i-1", category="c-1"))
        again = await store.append_event("s-pack", "e1", 3, 1_765_000_000.0, False, body="3:1765000000000:0")
        assert (first.event_index, first.duplicate, again.duplicate) == (0, False, True)
    finally:
        await client.aclose()


def test_a_clicks_keys_are_the_schemes() -> None:
    from service.store.keys import KeyScheme

    scheme = KeyScheme("p:v9")
    assert scheme.click("s-1") == [*scheme.session("s-1").as_tuple(), scheme.outcomes("s-1"), scheme.context("s-1")]
    with pytest.raises(ValueError, match="braces"):
        scheme.click("s-{1}")
