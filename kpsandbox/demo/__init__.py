"""The main job: simulate → Kafka → ledger (+ metrics) → report with charts."""
