"""Connection settings for every Kafka client the product makes (aiokafka and Faust).

One place turns the STREAM_KAFKA_* security settings into client arguments,
so the worker's Faust app, its output producer, backfill and rebuild readers,
the API's producer, `stream topics` and `/readyz` all connect the same way:
PLAINTEXT, TLS, or SASL (PLAIN, SCRAM-SHA-256/512) over either.
"""

from __future__ import annotations

import ssl
from typing import Any

from stream.config import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    ctx = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    if settings.kafka_ssl_certfile:
        ctx.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile or None)
    return ctx


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
    kwargs: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap,
                              "security_protocol": settings.kafka_security_protocol}
    ctx = ssl_context(settings)
    if ctx is not None:
        kwargs["ssl_context"] = ctx
    if settings.kafka_security_protocol.startswith("SASL_"):
        kwargs.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                      sasl_plain_username=settings.kafka_sasl_username,
                      sasl_plain_password=settings.kafka_sasl_password.get_secret_value())
    return kwargs


def faust_credentials(settings: Settings) -> Any:
    """Faust's `broker_credentials` for the same settings (None for PLAINTEXT)."""
    import faust
    from faust.types.auth import SASLMechanism

    ctx = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        mechanism = {"PLAIN": SASLMechanism.PLAIN,
                     "SCRAM-SHA-256": SASLMechanism.SCRAM_SHA_256,
                     "SCRAM-SHA-512": SASLMechanism.SCRAM_SHA_512}[settings.kafka_sasl_mechanism]
        return faust.SASLCredentials(username=settings.kafka_sasl_username,
                                     password=settings.kafka_sasl_password.get_secret_value(),
                                     ssl_context=ctx, mechanism=mechanism)
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None
