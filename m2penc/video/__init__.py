"""Video out: segmented long-video sampling and file writing with the music muxed in."""
