"""Unit tests of healthd.web: listen addresses, the exposition, the status document encoding."""
