"""Connection settings for every Kafka client the product makes (aiokafka and Faust).

One place turns the STREAM_KAFKA_* security settings into client arguments,
so the worker's Faust app, its output producer, backfill and rebuild readers,
the API's producer, `stream topics` and `/readyz` all connect the same way:
PLAINTEXT, TLS, or SASL (PLAIN, SCRAM-SHA-256/512) over either.

aiokafka reports a broker that refuses the credentials or the certificate only as
"Unable to bootstrap" (the cause goes to its log); `kafka_refusal` asks the brokers
directly, so a process can say which setting was turned down and why.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.errors import IllegalSaslStateError, KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

from stream.config import Settings

REFUSALS = (SaslAuthenticationFailed, UnsupportedSaslMechanismError, IllegalSaslStateError, ssl.SSLError)


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


def describe_refusal(exc: BaseException, settings: Settings) -> str:
    """One line saying what the broker refused and which settings to look at."""
    if isinstance(exc, SaslAuthenticationFailed | IllegalSaslStateError):
        return (f"SASL {settings.kafka_sasl_mechanism} authentication of user {settings.kafka_sasl_username!r} "
                f"failed ({exc}); check STREAM_KAFKA_SASL_USERNAME, STREAM_KAFKA_SASL_PASSWORD and "
                "STREAM_KAFKA_SASL_MECHANISM")
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"the listener does not offer SASL {settings.kafka_sasl_mechanism} ({exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"its TLS certificate is not trusted ({exc.verify_message}); "
                "set STREAM_KAFKA_SSL_CAFILE to the CA that signed it")
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake failed ({exc.reason or exc})"
    return str(exc)


async def kafka_refusal(settings: Settings, timeout_ms: int = 5000) -> str | None:
    """Why the bootstrap brokers refuse these settings (SASL, TLS, or a protocol the listener does not
    speak), in one line; None when one of them answers a metadata request, or none can be reached
    (an outage, which the services ride out)."""
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaConnectionError
    from aiokafka.protocol.metadata import MetadataRequest

    try:
        kwargs = client_kwargs(settings)
    except (OSError, ssl.SSLError) as exc:
        files = {"CAFILE": settings.kafka_ssl_cafile, "CERTFILE": settings.kafka_ssl_certfile,
                 "KEYFILE": settings.kafka_ssl_keyfile}
        named = ", ".join(f"STREAM_KAFKA_SSL_{k}={v!r}" for k, v in files.items() if v)
        return f"kafka: cannot load the TLS files ({named}): {exc}"
    servers = str(kwargs.pop("bootstrap_servers"))
    reasons: list[str] = []
    for server in (s.strip() for s in servers.split(",")):
        host, _, port = server.rpartition(":")
        conn = None
        try:
            conn = await create_conn(host, int(port), request_timeout_ms=timeout_ms, **kwargs)
            await conn.send(MetadataRequest([]))
        except REFUSALS as exc:
            reasons.append(f"kafka at {server}: {describe_refusal(exc, settings)}")
            continue
        except KafkaConnectionError as exc:
            if "closed" in str(exc):  # reached, then hung up on: what a TLS or SASL listener does to others
                reasons.append(f"kafka at {server} closed the connection at once ({exc}); does its listener "
                               f"speak {settings.kafka_security_protocol} (STREAM_KAFKA_SECURITY_PROTOCOL)?")
            continue
        except (OSError, KafkaError):
            continue
        finally:
            if conn is not None:
                conn.close()
        return None
    return "; ".join(reasons) or None
