"""Live segments: a real-time user-segmentation engine on Kafka, Faust and Redis."""

__version__ = "0.1.0"
