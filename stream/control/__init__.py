"""The control plane: what people author, logged to Kafka first and materialised in Redis."""
