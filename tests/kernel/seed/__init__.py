"""The seed's LVS lab (NAT, DR, fwmark persistence, health checks) rebuilt in network namespaces."""
