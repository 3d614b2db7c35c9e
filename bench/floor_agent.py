"""The Faust floor: the worker's intake (Faust's consumer group and fetcher, whole fetches
through `stream.agents.intake`, batches of `batch_size`, an ack per message) doing nothing
else. What the pipeline achieves over this is what the engine costs; what this achieves under
the raw aiokafka ceiling is what Faust and the intake cost."""

from __future__ import annotations

from stream.agents.intake import BatchApp
from stream.config import get_settings
from stream.kafkaio.client import faust_credentials

settings = get_settings()
app = BatchApp(
    settings.app_id,
    broker=settings.kafka_url,
    broker_credentials=faust_credentials(settings),
    store="memory://",
    datadir=settings.data_dir,
    topic_disable_leader=True,
    web_port=settings.worker_web_port,
    consumer_auto_offset_reset="earliest",
    broker_commit_every=1000,
    broker_commit_interval=1.0,
)
intake = app.batch_inputs(app.topic(settings.topic_events, settings.topic_profiles, key_serializer="raw",
                                    value_serializer="raw"))


@app.task
async def floor() -> None:
    while True:
        intake.ack(await intake.take(settings.batch_size, settings.batch_timeout_seconds))
