"""The database: one interface, and one module per backend."""
