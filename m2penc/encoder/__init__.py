"""The Music-to-Pose Encoder (M2PEnc) of the paper's section 3.2."""
