"""Evaluation: metrics on motion, keypoints and video (paper §4.2-4.3; music-to-dance BAS).

Today: :mod:`.beat_alignment` (music beats, motion beats and Bailando's Beat Alignment Score),
the one implementation the choreographers' tests, the demo benchmark and the evaluation command
share. Image and video metrics (PSNR, SSIM, LPIPS, FVD) and motion FIDs come here too.
"""
