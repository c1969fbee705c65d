"""A stand-in for the real trainers: same command line and output files, no framework.

Engine tests ship this folder instead of ``trainers/`` so they run in milliseconds and can
make a task slow, fail, or ignore SIGTERM on purpose (environment variables below).
"""
