"""Integration tests of the daemon: real sockets, real journald, real processes."""
