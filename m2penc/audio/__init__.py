"""Music in: decoding, trimming, resampling and per-frame music features."""
