"""healthd: an asyncio health checker for Linux Virtual Server, a drop-in replacement for ldirectord."""

__version__ = "0.1.0"
