"""The workloads shipped to a machine and run as processes (``python -m trainers.mnist``).

Imports nothing from ``orchestrator``, ``infra`` or ``ami``: this folder is copied to machines
that have none of them installed.
"""
