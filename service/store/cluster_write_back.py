"""A batch's `write_scores.lua` calls on a Redis Cluster: one pipeline per master (docs/redis.md "Write-behind").

A script's keys must share one slot, so a batch makes one call per slot, and a batch's sessions are seldom on one
slot. Sent one by one those calls cost about one round trip per click; pipelined per master, one per master and
flush. Each master succeeds or fails on its own, so a dead master costs only its own records.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError, SlotNotCoveredError

Call = tuple[list[str], list[Any]]  # a script call's (KEYS, ARGV)


async def write_per_master(client: RedisCluster, script: AsyncScript, calls: list[Call]) -> list[Any]:
    """Each call's reply, or the error that kept it from its master (returned, not raised), the masters
    concurrently."""
    await client.initialize()  # a refresh already due comes first (paced), so the calls group as they will be sent
    replies: list[Any] = [None] * len(calls)
    at_master: dict[str, list[int]] = {}
    for i, (keys, _) in enumerate(calls):
        try:
            master = client.get_node_from_key(keys[0])
        except SlotNotCoveredError as exc:  # a slot no master serves fails its own call only
            replies[i] = exc
            continue
        assert master is not None  # redis-py answers None only when a replica is asked for
        at_master.setdefault(master.name, []).append(i)
    outcomes = await asyncio.gather(*(_on_one_master(client, script, [calls[i] for i in at])
                                      for at in at_master.values()), return_exceptions=True)
    for at, outcome in zip(at_master.values(), outcomes, strict=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome  # a cancellation is the caller's, not a master's failure
        for j, i in enumerate(at):
            replies[i] = outcome if isinstance(outcome, Exception) else outcome[j]
    return replies


async def _on_one_master(client: RedisCluster, script: AsyncScript, calls: list[Call]) -> list[Any]:
    """One master's calls in one pipeline. A node without the script (a promoted replica, a restart) answers
    NOSCRIPT: the script is loaded on that node alone and those calls are sent again. redis-py's own reload
    (`register_script`) loads on every master, which fails while another one is down."""
    replies = await _evalsha_pipeline(client, script, calls)
    unloaded = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if not unloaded:
        return replies
    try:
        await _load_where_they_go(client, script, [calls[i] for i in unloaded])
        again = await _evalsha_pipeline(client, script, [calls[i] for i in unloaded])
    except RedisError as exc:  # only the calls that needed the script fail; the others' replies stand
        again = [exc] * len(unloaded)
    for i, reply in zip(unloaded, again, strict=True):
        replies[i] = reply
    return replies


async def _load_where_they_go(client: RedisCluster, script: AsyncScript, calls: list[Call]) -> None:
    """SCRIPT LOAD on each node the calls' slots are on now (a redirect may have moved them since)."""
    nodes: dict[str, ClusterNode] = {}
    for keys, _ in calls:
        node = client.get_node_from_key(keys[0])
        assert node is not None  # as above
        nodes[node.name] = node
    await asyncio.gather(*(client.execute_command("SCRIPT LOAD", script.script, target_nodes=node)
                           for node in nodes.values()))


async def _evalsha_pipeline(client: RedisCluster, script: AsyncScript, calls: list[Call]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            # redis-py blocks the pipeline's `evalsha` method on a cluster, since a script's keys may span slots;
            # each call's keys here share one, and the pipeline routes by them (a CROSSSLOT is its error).
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        replies = await pipe.execute(raise_on_error=False)
    return [reply if isinstance(reply, Exception) else list(reply) for reply in replies]
