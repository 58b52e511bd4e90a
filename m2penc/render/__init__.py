"""Headless rendering of posed body meshes into Champ's guidance maps, in plain torch.

Champ is conditioned on four images per frame - depth, normal, semantic (SMPL parts) and a DWPose
skeleton - which its authors render from SMPL fits with Blender Cycles and DWPose. This folder
makes the same images from any body model of the pack (and any SMPL motion), without Blender,
OpenGL or a GPU, following ``shared/spec/champ/GUIDANCE_MAPS.md``:

* :mod:`.camera` - Champ's pinhole camera (OpenCV axes, ``f = 5000/256 * max(W, H)``), one fixed
  camera framing a whole motion, calibrated (AIST++-style) cameras;
* :mod:`.rasterize` - a batched z-buffer rasteriser (1 sample at each pixel centre, like Cycles at 1 spp);
* :mod:`.maps` - depth, normal, semantic and mask maps from the rasterised fragments;
* :mod:`.palettes` - Champ's semantic palette (viridis of 10 x SMPL part);
* :mod:`.keypoints` - OpenPose-18 keypoints of the body, POSE_KEYPOINT, heatmaps, skeleton images;
* :mod:`.pose_maps` - the one entry point: body + motion + camera -> every map, batch by batch;
* :mod:`.appearance` - the body in clothes colours (named colour schemes), Lambert-shaded: synthetic
  training video and the demo's reference photo;
* :mod:`.primitives` - spheres, boxes and a rigidly skinned "bone body" for tests and benchmarks.
"""
