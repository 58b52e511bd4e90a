"""The demo recipe (issue 18): synthetic music, beat-choreographed dances, tiny models trained on them.

:mod:`.music_set` builds the seeded music set (``train`` / ``heldout`` splits of WAV files with
their ground-truth beats); :mod:`.recipe` runs the whole recipe; :mod:`.vae` trains its small VAE.
"""
