"""The SDGPip dataset builder (paper sec. 3.1): dances -> Champ's guidance maps, keypoints, heatmaps and
music features per frame -> webdataset shards that the training stages read.

* :mod:`.sources` - where motions come from: AIST++ (:mod:`.aist`, :mod:`.aist_layout`), EDGE
  pseudo-motions of the user's music, the procedural beat choreographer;
* :mod:`.targets` - a clip's per-frame targets (the renderer's maps, keypoints, heatmaps, features);
* :mod:`.shards` - the on-disk format (deterministic tar + sidecar index) and its reader;
* :mod:`.builder` - the plan, the workers (``torchrun``), resuming, the summary
  (``m2pdance-train sdgpip``);
* :mod:`.windows` - stage-1 training windows over a build.

Submodules are imported on demand so ``import m2pdance.training.sdgpip`` stays cheap.
"""
