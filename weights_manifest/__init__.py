"""The weights manifest: one source of truth for every file the pack can use."""
