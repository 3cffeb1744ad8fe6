"""Rule files: loading and validating them, keeping the ones in force, editing them."""
