"""The SDGPip dataset builder (paper sec. 3.1): real dance clips turned into training pairs.

Implemented so far: the AIST++ source (:mod:`.aist_layout` reads and checks the official AIST++
folder layout, :mod:`.aist` serves each sequence's motion, music, C09 camera and dancer-cropped
video frames). The builder's other parts (pose guidance and heatmap rendering, clip slicing,
the stage-2/3 video pairs, shard writing) come later and will consume :class:`.aist.AISTDataset`.
Submodules are imported on demand so ``import m2pdance.training.sdgpip`` stays cheap.
"""
