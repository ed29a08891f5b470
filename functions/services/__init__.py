"""Services: each carries out one use case by orchestrating ports (hand-off, the rollout workflow and
its activities, retraining, export, monitoring, recovery, status). Decisions come from
functions.domain; nothing here imports an SDK or an adapter."""
