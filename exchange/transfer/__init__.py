"""Format side of transfers: streaming CSV reading, normalization, mapping, dedupe and rejects.

Pure and Flask-free; the job runner feeds :func:`~exchange.transfer.pipeline.run_transform` with
byte chunks and moves the resulting files. Storage and transport live elsewhere (``exchange.blobs``, adapters).
"""
from __future__ import annotations
