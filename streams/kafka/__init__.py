"""Kafka clients, topics and connection diagnostics shared by every stage."""
