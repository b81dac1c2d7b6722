"""Audience Exchange: share audiences between producer and consumer endpoints."""
