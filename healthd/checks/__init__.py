"""Health checks, one module per protocol family; the engine calls them through runner.CheckRunner."""
