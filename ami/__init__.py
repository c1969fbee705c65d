"""What is on the machine: image specs, their hash, base-image resolution, user-data.

The bottom floor: pure data and rendering. It imports nothing of ours and never creates a
cloud client itself (clients are passed in).
"""
