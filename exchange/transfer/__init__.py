"""Format side of transfers: streaming CSV reading, normalization, mapping, dedupe and rejects.

Pure and Flask-free; the job runner feeds :func:`~exchange.transfer.pipeline.run_transform` with
byte chunks and moves the resulting files. Transport lives elsewhere (``blobstore``, adapters).
"""
from __future__ import annotations
