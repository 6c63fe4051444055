"""What leaves the database: notifications (in-app and e-mail) and webhooks, written in the
step's transaction and sent after the commit by the outbox's senders."""
