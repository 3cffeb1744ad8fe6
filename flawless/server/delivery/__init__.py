"""Ways out: alerts rendered, kept in the outbox and delivered through their channels."""
