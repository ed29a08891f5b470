"""Composition root of the modelops Function App (Azure Functions, Python v2 programming model).

Builds one Durable-capable app and registers one blueprint per trigger family. Imports only light
modules: azure.ai.ml, evidently, sklearn, pandas and scipy load inside the code paths that need them.
"""

import azure.durable_functions as df
import azure.functions as func

from functions.triggers import (
    http_alerts,
    http_controls,
    http_freezes,
    http_health,
    http_rollouts,
    model_monitor_events,
    rollout_activity,
    rollout_events,
    rollout_orchestration,
    timers_monitoring,
    timers_operations,
)

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(http_health.bp)
app.register_functions(rollout_events.bp)
app.register_functions(rollout_orchestration.bp)
app.register_functions(rollout_activity.bp)
app.register_functions(http_rollouts.bp)
app.register_functions(http_controls.bp)
app.register_functions(http_alerts.bp)
app.register_functions(model_monitor_events.bp)
app.register_functions(timers_monitoring.bp)
app.register_functions(http_freezes.bp)
app.register_functions(timers_operations.bp)
