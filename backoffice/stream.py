"""NATS JetStream: the terminals' records up, the blacklist down.

=====================  ==============================================================
``KOALA_RECORDS``      stream of ``koala.records.<terminal>``: every outbox line, its
                       message id its digest (``Nats-Msg-Id``), so the stream keeps a
                       line sent twice once within the duplicate window
``clearing``           the durable pull consumer every clearing worker shares: each
                       message to one worker, redelivered after ``ack_wait`` if that
                       worker dies before it acknowledges
``koala-blacklist``    key-value bucket (one value per card, JetStream KV): the card's
                       serial → the local time of its report and why
=====================  ==============================================================

Only this module speaks to the NATS client, and it translates the client's errors once
into :class:`backoffice.errors.StreamUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from backoffice.errors import StreamUnavailable
from reader.outbox import Outbox, message_id

STREAM, SUBJECTS, CONSUMER, BUCKET = "KOALA_RECORDS", "koala.records.>", "clearing", "koala-blacklist"
DUPLICATE_WINDOW_S = 24 * 3600.0  # a terminal back after a day offline still sends each line once
PUBLISH_WINDOW = 512  # publishes in flight at once


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[Any]:
    """A JetStream context on the server at ``url``, with the stream, consumer and bucket."""
    import nats  # noqa: PLC0415 - the client loads only where a stream is used
    from nats.errors import Error as NatsError  # noqa: PLC0415

    try:
        client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=2,
                                    allow_reconnect=True)
    except (TimeoutError, OSError, NatsError) as error:
        raise StreamUnavailable(f"no NATS server at {url} ({error or type(error).__name__}): "
                                f"start one with `nats-server -js`, or clear without --nats") from None
    try:
        stream = client.jetstream(timeout=10)
        await _ensure(stream)
        yield stream
    except NatsError as error:
        raise StreamUnavailable(f"JetStream at {url}: {error}") from None
    finally:
        await client.close()


async def _ensure(stream: Any) -> None:
    from nats.js.api import KeyValueConfig, StorageType, StreamConfig  # noqa: PLC0415

    await stream.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECTS], storage=StorageType.FILE,
                                         duplicate_window=DUPLICATE_WINDOW_S))
    await stream.create_key_value(KeyValueConfig(bucket=BUCKET, history=1,
                                                 storage=StorageType.FILE))


async def upload(stream: Any, box: Outbox, progress: Callable[[int], None] | None = None) -> int:
    """Publish every line of ``box`` the stream has not acknowledged; the outbox's mark moves
    after each window of acknowledgements. Returns how many lines went."""
    entries = box.unsent()
    for start in range(0, len(entries), PUBLISH_WINDOW):
        window = entries[start:start + PUBLISH_WINDOW]
        await publish(stream, box.terminal_id, [entry.line for entry in window])
        box.acknowledged(window[-1].end)
        if progress is not None:
            progress(len(window))
    return len(entries)


async def publish(stream: Any, terminal_id: bytes, lines: list[bytes]) -> None:
    """Publish one window of a terminal's lines at once, each acknowledged by the stream
    before this returns."""
    subject = f"koala.records.{terminal_id.hex().upper()}"
    await asyncio.gather(*(stream.publish(subject, data, headers={"Nats-Msg-Id": message_id(data)})
                           for data in lines))


@dataclass(frozen=True, slots=True)
class Delivery:
    """A fetched batch: the lines, which of them come for the first time, and how to
    acknowledge them all once booked."""

    lines: list[bytes]
    fresh: list[bool]
    messages: list[Any]

    async def acknowledge(self) -> None:
        """Each message acknowledged in turn: an ack is only buffered for the connection to
        send, so a task each (``gather``) cost more than the acks."""
        for message in self.messages:
            await message.ack()


async def subscription(stream: Any, ack_wait_s: float) -> Any:
    from nats.js.api import AckPolicy, ConsumerConfig  # noqa: PLC0415

    return await stream.pull_subscribe(SUBJECTS, durable=CONSUMER, stream=STREAM,
                                       config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT,
                                                             ack_wait=ack_wait_s,
                                                             max_ack_pending=100_000))


async def fetch(pull: Any, batch: int, timeout_s: float) -> Delivery | None:
    """Up to ``batch`` messages, None when none came within ``timeout_s``."""
    from nats.errors import TimeoutError as NatsTimeout  # noqa: PLC0415

    try:
        messages = await pull.fetch(batch, timeout=timeout_s)
    except (TimeoutError, NatsTimeout):
        return None
    return Delivery([message.data for message in messages],
                    [message.metadata.num_delivered == 1 for message in messages], messages)


async def pending(stream: Any) -> int:
    """Messages the clearing consumer has not yet had acknowledged (the stream's lag)."""
    info = await stream.consumer_info(STREAM, CONSUMER)
    return int(info.num_pending + info.num_ack_pending)


async def undelivered(stream: Any) -> int:
    """Messages the clearing consumer has not yet delivered to any worker."""
    info = await stream.consumer_info(STREAM, CONSUMER)
    return int(info.num_pending)


async def blacklist(stream: Any, serial: str, since: str, reason: str) -> None:
    bucket = await stream.key_value(BUCKET)
    await bucket.put(serial, json.dumps({"since": since, "reason": reason}).encode())


async def unblacklist(stream: Any, serial: str) -> None:
    """The card off the bucket: each watching gate lets it through again."""
    bucket = await stream.key_value(BUCKET)
    await bucket.delete(serial)


async def round_trip(stream: Any) -> None:
    """One request to JetStream and its answer (what "within one round trip" is measured by)."""
    await stream.account_info()


async def listed(stream: Any) -> set[bytes]:
    """The bucket's cards now (a gate starting up)."""
    from nats.js.errors import NoKeysError  # noqa: PLC0415

    bucket = await stream.key_value(BUCKET)
    try:
        return {bytes.fromhex(key) for key in await bucket.keys()}
    except NoKeysError:
        return set()


async def watch_blacklist(stream: Any, listed: set[bytes], ready: asyncio.Event | None = None,
                          seen: Callable[[str], None] | None = None) -> None:
    """Keep ``listed`` equal to the bucket's cards until cancelled: what is there first, then
    every card reported (``seen`` hears each by serial as it arrives)."""
    bucket = await stream.key_value(BUCKET)
    watcher = await bucket.watchall()
    async for entry in watcher:
        if entry is None:  # the values there before the watch began have all come
            if ready is not None:
                ready.set()
            continue
        serial = bytes.fromhex(entry.key)
        if entry.operation in (None, "PUT"):
            listed.add(serial)
        else:
            listed.discard(serial)
        if seen is not None:
            seen(entry.key)
