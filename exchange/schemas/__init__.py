"""Marshmallow schemas: the contract of the API, reused by the web interface."""
