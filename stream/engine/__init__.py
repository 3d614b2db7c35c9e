"""The Kafka-free engine: batches in, committed state and segment changes out; jobs; recount."""
