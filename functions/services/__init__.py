"""Services: orchestrate ports to carry out one use case (no SDK imports; decisions live in core)."""
