"""The execution gateway's core: intent model, gate and risk decisions, and their orchestration.

Import the public API from :mod:`backend.execution.engine`.
"""
