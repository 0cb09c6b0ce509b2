"""Kafka-free core: decode, ingest, partials, windows, evaluation, alerts, references."""
