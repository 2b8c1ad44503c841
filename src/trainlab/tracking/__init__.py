"""What a run leaves behind: metrics.json, provenance, checkpoints written atomically."""
