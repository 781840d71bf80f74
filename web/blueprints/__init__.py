"""HTTP blueprints: jobs, probes, API docs."""
