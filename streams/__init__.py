"""Real-time customer-engagement pipeline on Kafka and Faust."""

__version__ = "0.1.0"
