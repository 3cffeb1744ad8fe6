"""git: what its output means (porcelain) and running it on the repository (repository)."""
