"""Alerts: one message when a route starts failing, when it recovers, when a series keeps
failing, and when a route has had no successful check for a while; by email (SMTP) and/or a
webhook (Teams, Slack, or plain JSON). Off unless configured (settings.py)."""
