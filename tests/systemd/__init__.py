"""The systemd tier: the Debian package under a real systemd (PID 1) in the test VM."""
