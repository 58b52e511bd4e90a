"""Evaluation: metrics on motion, keypoints and video (paper §4.2-4.3; music-to-dance BAS).

* :mod:`.beat_alignment`: music beats, motion beats and Bailando's Beat Alignment Score, the one
  implementation the choreographers' tests, the node, the demo benchmark and evaluation share;
  :mod:`.plots` draws its chart.
* :mod:`.image_metrics`: PSNR and SSIM per frame (Table 1); :mod:`.lpips`: LPIPS v0.1 (AlexNet /
  VGG16 under torchvision's key names, no torchvision).
* :mod:`.fvd`: FVD on 16-frame clips with the Kinetics-400 I3D of :mod:`.i3d` (cd-fvd's protocol,
  400-d logits).
* :mod:`.motion_metrics`: EDGE's PFC, Bailando's kinetic / geometric features, FID_k / FID_g, Div,
  and the AIST++ ground-truth statistics.
* :mod:`.video_sets`: two sets of video files scored (per frame, pooled; FVD between the sets);
  :mod:`.report`: Tables 1 and 3 as Markdown + CSV beside the paper's numbers. The AIST++
  protocol that produces the videos is ``training/eval_aist.py`` (it reads AIST++ through the
  SDGPip sources).
"""
