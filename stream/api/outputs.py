"""The API's own Kafka producer, for the membership changes a list upload makes.

Started on first use, not in the lifespan: the API must come up and answer
/readyz (saying Kafka is down) even while the broker is unreachable, and only
an upload needs to produce.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer

from stream.config import Settings
from stream.outputs import DeadLetter


class KafkaUnavailable(RuntimeError):
    """Kafka could not be reached or did not acknowledge; the API answers 503."""


class KafkaOutputs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                            linger_ms=5, request_timeout_ms=15000)
                try:
                    await producer.start()
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise KafkaUnavailable(f"kafka unreachable: {exc}") from exc
                self._producer = producer
            return self._producer

    async def ready(self) -> None:
        """Connects now, so a caller can fail before it changes anything rather than midway."""
        await self._started()

    async def _send(self, topic: str, records: list[tuple[bytes | None, bytes | None,
                                                         list[tuple[str, bytes]] | None]]) -> None:
        producer = await self._started()
        try:
            futures = [await producer.send(topic, value, key=key, headers=headers) for key, value, headers in records]
            await asyncio.gather(*futures)
        except Exception as exc:
            raise KafkaUnavailable(f"kafka did not acknowledge: {exc}") from exc

    async def send_changes(self, records: list[tuple[str, bytes]]) -> None:
        await self._send(self.settings.topic_changes, [(uid.encode(), value, None) for uid, value in records])

    async def send_dead_letters(self, letters: list[DeadLetter]) -> None:
        await self._send(self.settings.topic_dlq, [
            (d.message.key, d.message.value, [("reason", d.reason.encode()), ("detail", d.detail.encode())])
            for d in letters
        ])

    async def close(self) -> None:
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None
