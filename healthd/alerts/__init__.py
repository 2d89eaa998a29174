"""Email alerts as ldirectord sends them: when (alerter), what (message), how they go (transport, outbox)."""
