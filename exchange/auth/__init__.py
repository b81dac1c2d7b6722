"""Accounts, users, API keys and the tenancy rules that scope every query to one account."""
