"""Kafka clients: connection settings, the output producer, log readers, topic creation."""
