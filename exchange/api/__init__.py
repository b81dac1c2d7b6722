"""HTTP API: one flask-smorest blueprint per resource, all under ``/v1``."""
