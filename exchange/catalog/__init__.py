"""Endpoint registry, audience metadata gathering and search."""
