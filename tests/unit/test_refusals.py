"""Telling a refused login or certificate from an outage, and saying which setting to fix."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError
from redis.exceptions import AuthenticationError, NoPermissionError
from redis.exceptions import ConnectionError as RedisConnectionError

from stream.config import Settings
from stream.kafkaio import client as kafka_client
from stream.state import client as redis_client

pytestmark = pytest.mark.unit


def _settings(redis_url: str = "rediss://app:pw@10.0.0.6:6380/0") -> Settings:
    return Settings(redis_url=redis_url, kafka_security_protocol="SASL_SSL", kafka_sasl_username="app",
                    kafka_sasl_mechanism="PLAIN")


def _wrapped(inner: BaseException) -> RedisConnectionError:
    """What redis-py raises around a TLS error."""
    try:
        try:
            raise inner
        except OSError as exc:
            raise RedisConnectionError("Error 1 connecting to 10.0.0.6:6380.") from exc
    except RedisConnectionError as outer:
        return outer


def _verify_failed() -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    exc.verify_message = "self-signed certificate in certificate chain"
    return exc


def test_redis_refusals_are_not_outages() -> None:
    assert redis_client.refused(AuthenticationError("invalid username-password pair"))
    assert redis_client.refused(NoPermissionError("this user has no permissions to run the 'eval' command"))
    assert redis_client.refused(_wrapped(_verify_failed()))
    assert not redis_client.refused(RedisConnectionError("Error 111 connecting to 10.0.0.6:6380. Connection refused."))
    assert not redis_client.refused(_wrapped(ConnectionResetError(104, "Connection reset by peer")))
    assert not redis_client.refused(TimeoutError())


def test_redis_refusals_name_the_settings() -> None:
    settings = _settings()
    said = redis_client.describe_refusal(AuthenticationError("invalid username-password pair"), settings)
    assert said.startswith("redis at 10.0.0.6:6380 refused the credentials of user 'app'"), said
    assert "STREAM_REDIS_PASSWORD" in said
    anonymous = _settings(redis_url="rediss://10.0.0.6:6380/0")
    said = redis_client.describe_refusal(AuthenticationError("Authentication required."), anonymous)
    assert "requires authentication" in said and "STREAM_REDIS_USERNAME" in said, said
    said = redis_client.describe_refusal(_wrapped(_verify_failed()), settings)
    assert "not trusted (self-signed certificate in certificate chain)" in said
    assert "STREAM_REDIS_SSL_CA_CERTS" in said
    said = redis_client.describe_refusal(NoPermissionError("no permissions to run 'eval'"), settings)
    assert "user 'app' lacks a permission" in said, said


def test_kafka_refusals_name_the_settings() -> None:
    settings = _settings()
    said = kafka_client.describe_refusal(SaslAuthenticationFailed("Invalid username or password"), settings)
    assert said.startswith("SASL PLAIN authentication of user 'app' failed"), said
    assert "STREAM_KAFKA_SASL_PASSWORD" in said
    said = kafka_client.describe_refusal(UnsupportedSaslMechanismError("PLAIN"), settings)
    assert "does not offer SASL PLAIN" in said, said
    said = kafka_client.describe_refusal(_verify_failed(), settings)
    assert "not trusted (self-signed certificate in certificate chain)" in said
    assert "STREAM_KAFKA_SSL_CAFILE" in said


async def test_missing_certificate_files_are_named_before_connecting(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.crt")
    kafka = Settings(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=missing)
    said = await kafka_client.kafka_refusal(kafka)
    assert said is not None and missing in said, said
    assert said.startswith("kafka: cannot load the TLS files (STREAM_KAFKA_SSL_CAFILE="), said
    redis = Settings(redis_url="rediss://10.0.0.6:6380/0", redis_ssl_ca_certs=missing)
    said = await redis_client.redis_refusal(redis)
    assert said is not None and missing in said, said
    assert said.startswith("redis: cannot load the TLS files (STREAM_REDIS_SSL_CA_CERTS="), said
