"""Unit tests of the daemon: notify protocol, logging, pidfile, command line."""
