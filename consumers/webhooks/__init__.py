"""Webhooks (issue 10): Standard Webhooks signing today; the dispatcher and delivery log come later."""
