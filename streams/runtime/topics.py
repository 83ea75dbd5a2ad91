"""Creating the pipeline's topics (the worker declares them too, but producers may come first)."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.capabilities.registry import build_capabilities
from streams.config import Settings


async def ensure_topics(settings: Settings, attempts: int = 20) -> list[str]:
    """Create the events and output topics (the pipeline's and the capabilities' own) with the
    configured partitions; returns those created."""
    wanted = [settings.events_topic, *settings.output_topics]
    wanted += [topic for cap in build_capabilities(settings) for topic in cap.topics() if topic not in wanted]
    last: Exception | None = None
    for _ in range(attempts):
        admin = AIOKafkaAdminClient(**settings.kafka_client_options())
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            new = [NewTopic(name, settings.partitions, settings.replication_factor)
                   for name in wanted if name not in existing]
            if new:
                try:
                    await admin.create_topics(new)
                except TopicAlreadyExistsError:
                    pass
            return [t.name for t in new]
        except TopicAlreadyExistsError:
            return []
        except Exception as exc:  # the broker may still be coming up
            last = exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
    raise RuntimeError(f"could not create topics on {settings.bootstrap}: {last}")
