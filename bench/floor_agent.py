"""The Faust floor: the worker's intake (Faust's consumer group and fetcher, whole fetches
through `stream.agents.intake`, batches of `batch_size`, an ack per message) doing nothing
else. What the pipeline achieves over this is what the engine costs; what this achieves under
the raw aiokafka ceiling is what Faust and the intake cost."""

from __future__ import annotations

from bench.floor_options import floor_options
from stream.agents.intake import BatchApp
from stream.config import get_settings

settings = get_settings()
app = BatchApp(settings.app_id, **floor_options(settings))
intake = app.batch_inputs(app.topic(settings.topic_events, settings.topic_profiles, key_serializer="raw",
                                    value_serializer="raw"))


@app.task
async def floor() -> None:
    while True:
        intake.ack(await intake.take(settings.batch_size, settings.batch_timeout_seconds))
