"""The check engine: scheduling, health state, and the pure policy that yields the desired IPVS table.

Import what you need from the submodules: engine.Engine (what the daemon drives),
policy.desired_table (pure), health.HealthBook, scheduler.Scheduler.
"""
