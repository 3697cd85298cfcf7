"""The metrics consumer: cash-to-digital and operational metrics for Prometheus (see docs/metrics.md)."""
