"""Toolkit for endpoint providers: client, command line and the reference endpoint (SPEC §10).

The reference endpoint serves the endpoint protocol over folders of CSV files: see
:mod:`exchange.toolkit.reference_endpoint`.
"""

from __future__ import annotations

from exchange.toolkit.client import Client
from exchange.toolkit.ref_csv import IDENTIFIER_NAMES
from exchange.toolkit.reference_endpoint import ReferenceApp, ReferenceEndpoint, serve_endpoint

__all__ = ["Client", "IDENTIFIER_NAMES", "ReferenceApp", "ReferenceEndpoint", "serve_endpoint"]
