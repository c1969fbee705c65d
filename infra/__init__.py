"""Where compute comes from (providers) and how a machine is reached (transports)."""
