"""Jukebox 5B-prior layer activations (4800-d music features) without jukemirlib."""
