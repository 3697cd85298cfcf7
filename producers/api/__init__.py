"""The sandbox's HTTP API for startups (issue 9): a producer that turns requests into contract events."""
