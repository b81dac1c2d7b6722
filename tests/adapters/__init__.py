"""Tests of the partner adapters, their driver and their registry."""
