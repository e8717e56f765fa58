"""ResilientTransport (placeholder until the transport lands)."""
