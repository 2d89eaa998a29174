"""The HTTP side of healthd: metrics, status page, notify hooks, against real loopback servers."""
