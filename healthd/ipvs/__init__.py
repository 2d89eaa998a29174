"""The IPVS table: value types, the netlink driver, the in-memory table and the reconciler."""
