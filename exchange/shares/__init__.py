"""Shares and their schedules: the service layer above the job engine (API and web call these)."""
