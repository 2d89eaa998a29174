"""Route health injection: a VIP's host route exists while its virtual service can serve (BGP via BIRD)."""
