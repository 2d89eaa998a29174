"""The running daemon: lifecycle, reload, systemd notification, logging and the control socket."""
