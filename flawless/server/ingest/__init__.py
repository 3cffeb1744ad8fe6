"""Ways in: the JSON-RPC port, its HTTP bounds and rate limits, and the durable inbox."""
