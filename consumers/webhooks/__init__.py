"""Webhooks (issue 10): Standard Webhooks signing, the events a status change announces, and the
dispatcher that delivers them (`python -m consumers.webhooks`). The CLI comes later."""
