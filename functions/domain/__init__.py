"""The domain: pure decisions and the types they carry (events, decisions, alerts, traffic maps,
configuration, gate and health judging, how an interrupted rollout ends). No I/O, no SDK: every
function here is tested by direct call."""
