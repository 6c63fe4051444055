"""Deadlines: the working-time calendar they are counted in, and the escalation ladder that
reminds, reports breaches and escalates to the head of department, each rung once."""
