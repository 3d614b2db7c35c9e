"""The local broker's files (deploy/local/kafka) fit the Kafka release they pin.

Kafka 4 is KRaft only and logs through log4j2: a leftover log4j 1 binding, a
setting Kafka 4 removed or a static voter list beside `format --standalone`
would only show when `make up` fails to start the broker.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.unit.deploy.test_compose import KAFKA_VERSION, REMOVED_IN_KAFKA_4

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
LOCAL = ROOT / "deploy" / "local"
POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _properties(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _dependencies() -> dict[str, str]:
    root = ET.parse(LOCAL / "kafka" / "pom.xml").getroot()
    props = {p.tag.split("}")[1]: p.text or "" for p in root.findall("m:properties/*", POM_NS)}
    deps = {}
    for dep in root.findall("m:dependencies/m:dependency", POM_NS):
        version = dep.findtext("m:version", "", POM_NS)
        if version.startswith("${"):
            version = props[version[2:-1]]
        deps[f"{dep.findtext('m:groupId', '', POM_NS)}:{dep.findtext('m:artifactId', '', POM_NS)}"] = version
    return deps


def test_pom_pins_kafka_4_with_a_log4j2_binding() -> None:
    deps = _dependencies()
    assert deps["org.apache.kafka:kafka_2.13"] == KAFKA_VERSION
    assert KAFKA_VERSION.startswith("4.")
    # Kafka 4's poms use slf4j-api 1.7, whose log4j2 binding is log4j-slf4j-impl (not -slf4j2-impl).
    core = deps["org.apache.logging.log4j:log4j-core"]
    assert deps["org.apache.logging.log4j:log4j-slf4j-impl"] == core
    assert core.startswith("2.")
    stale = [d for d in deps if d.startswith(("log4j:", "ch.qos.reload4j:")) or "reload4j" in d or "log4j12" in d]
    assert stale == []


def test_log4j2_config_writes_to_the_log_dir() -> None:
    text = (LOCAL / "kafka" / "log4j2.yaml.in").read_text()
    config = yaml.safe_load(text.replace("@LOGDIR@", "/tmp/log"))["Configuration"]
    files = {a["name"]: a for a in config["Appenders"]["RollingFile"]}
    root_refs = [ref["ref"] for ref in config["Loggers"]["Root"]["AppenderRef"]]
    assert root_refs and set(root_refs) <= set(files)
    assert all(files[ref]["fileName"].startswith("/tmp/log/") for ref in root_refs)
    assert not (LOCAL / "kafka" / "log4j.properties.in").exists()
    script = (LOCAL / "kafka.sh").read_text()
    assert "-Dlog4j2.configurationFile=" in script
    assert "-Dlog4j.configuration=" not in script


def test_server_properties_are_kraft_4() -> None:
    props = _properties((LOCAL / "kafka" / "server.properties.in").read_text())
    assert props["process.roles"] == "broker,controller"
    # `kafka-storage format --standalone` (kafka.sh) refuses a static voter list.
    assert "format --standalone" in (LOCAL / "kafka.sh").read_text()
    assert "controller.quorum.voters" not in props
    assert props["controller.quorum.bootstrap.servers"] == "@HOST@:@CPORT@"
    assert [key for key in props if key.startswith(REMOVED_IN_KAFKA_4)] == []
    listeners = props["listeners"].split(",")
    assert listeners[0] == "PLAINTEXT://@HOST@:@PORT@"
    assert props["controller.listener.names"] == "CONTROLLER"


def test_kafka_sh_documents_every_variable_it_reads() -> None:
    script = (LOCAL / "kafka.sh").read_text()
    header = script.split("\nsource ", 1)[0]
    read = set(re.findall(r"\$\{(STREAM_KAFKA_\w+)", script))
    assert {"STREAM_KAFKA_SASL_PORT", "STREAM_KAFKA_TLS_DIR"} <= read
    assert sorted(v for v in read if v not in header) == []
