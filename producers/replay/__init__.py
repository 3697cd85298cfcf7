"""The replayer: an archive, or another prefix's topics, back onto Kafka under a new prefix (docs/archive.md)."""
