"""The archiver: every topic of a run to Parquet, partitioned by topic and simulated date (docs/archive.md)."""
