"""The scheduler (APScheduler) that fires BPMN timers and escalation rungs on time and sends
the outbox, in any number of processes at once, and the heartbeats that tell it is alive."""
