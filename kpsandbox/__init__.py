"""The `kpsandbox` command line: a thin layer that wires producers, consumers and infra. Nothing imports it."""
