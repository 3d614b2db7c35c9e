"""A Redis that speaks only TLS and knows only an ACL user, and a Kafka broker with a SASL_SSL listener.

Both are started once per module, on free ports, and stopped by pid at the end. Redis's
certificates are made here with openssl (a CA, a server certificate for 127.0.0.1 and
localhost, a client certificate: Redis asks for one, `--tls-auth-clients yes`); the broker's
are made by deploy/local/kafka.sh (openssl and keytool) in a directory of this module. Two
CAs on purpose: a client that trusted one dependency's CA for the other would fail.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis as redis_sync

from stream.config import Settings
from tests.integration.conftest import ROOT, free_port, stop_process

REDIS_USER = "stream-app"
# Characters a URL must escape, so the rediss:// URL's user info is really decoded.
REDIS_PASSWORD = "p@ss/w%rd:" + uuid.uuid4().hex[:8]
KAFKA_USER = "stream-tls"
KAFKA_PASSWORD = "sasl-" + uuid.uuid4().hex[:16]


def openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate it signs (SAN 127.0.0.1 and localhost) and a client certificate."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    @classmethod
    def make(cls, directory: Path) -> Pki:
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        openssl(directory, "req", "-x509", *ec, "-days", "2", "-subj", "/CN=live-segments redis test CA",
                "-keyout", "ca.key", "-out", "ca.crt",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        for name, cn, ext in (
            ("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
            ("client", REDIS_USER, "extendedKeyUsage=clientAuth\n"),
        ):
            (directory / f"{name}.ext").write_text(ext + "keyUsage=critical,digitalSignature\n")
            openssl(directory, "req", *ec, "-subj", f"/CN={cn}", "-keyout", f"{name}.key", "-out", f"{name}.csr")
            openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                    "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
        return cls(directory)


@dataclass(frozen=True)
class SecureRedis:
    port: int
    pki: Pki
    pid: int

    def url(self, scheme: str = "rediss", user: str = REDIS_USER, password: str = REDIS_PASSWORD) -> str:
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user or password else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    def settings(self) -> dict[str, Any]:
        return {"redis_url": self.url(), "redis_ssl_ca_certs": str(self.pki.ca),
                "redis_ssl_certfile": str(self.pki.cert("client")), "redis_ssl_keyfile": str(self.pki.key("client"))}


@dataclass(frozen=True)
class SecureKafka:
    sasl_port: int
    plaintext_port: int
    tls_dir: Path

    @property
    def ca(self) -> Path:
        return self.tls_dir / "ca.crt"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def settings(self, mechanism: str = "SCRAM-SHA-512") -> dict[str, Any]:
        return {"kafka_bootstrap": self.bootstrap, "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": mechanism, "kafka_sasl_username": KAFKA_USER,
                "kafka_sasl_password": KAFKA_PASSWORD, "kafka_ssl_cafile": str(self.ca)}


@pytest.fixture(scope="module")
def secure_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRedis]:
    root = tmp_path_factory.mktemp("secure-redis")
    pki = Pki.make(root)
    port = free_port()
    log = root / "redis.log"
    args = ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(pki.cert("server")), "--tls-key-file", str(pki.key("server")),
            "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "yes",
            # Anonymous access refused: the default user is off, the one user has a password.
            "--user", "default", "off", "--user", REDIS_USER, "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all",
            "--save", "", "--appendonly", "no", "--dir", str(root), "--logfile", str(log)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis_sync.Redis(host="127.0.0.1", port=port, username=REDIS_USER, password=REDIS_PASSWORD,
                              ssl=True, ssl_ca_certs=str(pki.ca), ssl_certfile=str(pki.cert("client")),
                              ssl_keyfile=str(pki.key("client")), socket_connect_timeout=2)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"redis-server exited:\n{log.read_text() if log.exists() else ''}"
            try:
                if client.ping():
                    break
            except redis_sync.ConnectionError:
                assert time.monotonic() < deadline, f"redis-server not ready:\n{log.read_text()}"
                time.sleep(0.1)  # nothing to wait on but the port: poll it
        client.close()
        yield SecureRedis(port, pki, proc.pid)
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """A broker of its own from deploy/local/kafka.sh (own var dir and ports) with the SASL_SSL listener."""
    root = tmp_path_factory.mktemp("secure-kafka")
    kafka = SecureKafka(sasl_port=free_port(), plaintext_port=free_port(), tls_dir=root / "tls")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    env.update(STREAM_VAR_DIR=str(root / "var"), STREAM_KAFKA_HOST="127.0.0.1",
               STREAM_KAFKA_PORT=str(kafka.plaintext_port), STREAM_KAFKA_CONTROLLER_PORT=str(free_port()),
               STREAM_KAFKA_SASL_PORT=str(kafka.sasl_port), STREAM_KAFKA_TLS_DIR=str(kafka.tls_dir),
               STREAM_KAFKA_SASL_USER=KAFKA_USER, STREAM_KAFKA_SASL_PASSWORD=KAFKA_PASSWORD)
    script = str(ROOT / "deploy" / "local" / "kafka.sh")
    started = subprocess.run(["bash", script, "start"], env=env, capture_output=True, text=True)
    try:
        assert started.returncode == 0, f"kafka.sh start failed:\n{started.stderr}"
        yield kafka
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True)  # TERM to the recorded pid


@pytest.fixture
def secure_settings(settings_factory: Callable[..., Settings], secure_redis: SecureRedis,
                    secure_kafka: SecureKafka) -> Settings:
    """Fresh topics, prefix and ports, with every connection encrypted and authenticated."""
    return settings_factory(**secure_redis.settings(), **secure_kafka.settings())
