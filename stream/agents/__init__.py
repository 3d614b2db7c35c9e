"""Faust agents: thin adapters from Kafka to the engine."""
