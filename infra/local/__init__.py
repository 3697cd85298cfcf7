"""Embedded local services: real Apache Kafka, PostgreSQL and Prometheus run as child processes."""
