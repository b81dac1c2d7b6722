"""Delivery: a job's planned operations to its destination — PUSH parts, PULL offers, partner batches.

``push``, ``pull`` and ``adapter`` each send; ``acks`` records what consumers acknowledge and fails
overdue deliveries; ``finish`` ends a job and advances (or marks) the share's snapshot. Modules here
import only downward (``finish`` ← ``acks`` ← ``push``/``pull``); the phases choose which to call.
"""
