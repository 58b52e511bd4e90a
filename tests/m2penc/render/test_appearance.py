"""The appearance renderer: scheme colours times Lambert shading, exact backgrounds, the maps' silhouette."""
from __future__ import annotations

import pytest
import torch

from m2pdance.m2penc.body import make_body
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.render.appearance import (COLOUR_SCHEMES, DEFAULT_LIGHT, HELDOUT_SCHEMES, TRAINING_SCHEMES,
                                               a_pose, background_image, body_colours, hair_vertices, part_regions,
                                               reference_photo, render_appearance, render_fragments_appearance,
                                               rest_pose_vertices, shading, SKIN, TOP)
from m2pdance.m2penc.render.maps import linear_to_srgb, srgb_to_linear, to_byte, vertex_normals
from m2pdance.m2penc.render.pose_maps import motion_camera, render_mesh_maps
from m2pdance.m2penc.render.palettes import part_colors
from m2pdance.m2penc.render.rasterize import rasterize


@pytest.fixture(scope="module")
def scene():
    body = make_body("open")
    wiggle = torch.randn(24, 3, generator=torch.Generator().manual_seed(0)) * 0.2
    poses = torch.stack([a_pose(), a_pose() * 0.3 + wiggle])
    trans = torch.zeros(2, 3)
    with torch.no_grad():
        vertices = body(poses, trans).vertices
    return body, vertices, {s: motion_camera(body, poses, trans, s, s) for s in (128, 256)}


def test_schemes_are_distinct_and_some_held_out():
    assert len(TRAINING_SCHEMES) >= 6 and len(HELDOUT_SCHEMES) >= 2
    tops = {COLOUR_SCHEMES[n].top for n in COLOUR_SCHEMES}
    assert len(tops) == len(COLOUR_SCHEMES)
    assert part_regions(COLOUR_SCHEMES["red_jeans"])[[16, 18, 20]].tolist() == [TOP, SKIN, SKIN]   # short sleeves
    assert part_regions(COLOUR_SCHEMES["green_khaki"])[[16, 18, 20]].tolist() == [TOP, TOP, SKIN]  # long sleeves
    with pytest.raises(InputError):
        COLOUR_SCHEMES["red_jeans"].__class__("bad", (0, 0, 300), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0))


def test_hair_on_top_and_back_of_head_not_the_face(scene):
    body = scene[0]
    hair = hair_vertices(body.part_labels, rest_pose_vertices(body))
    head = body.part_labels == 15
    assert hair[~head].sum() == 0 and 0.3 < hair[head].float().mean() < 0.8
    assert not any(hair[body.landmarks[k]] for k in ("nose", "left_eye", "right_eye"))
    colours = body_colours(body, "red_jeans")
    assert tuple(colours[hair][0].tolist()) == COLOUR_SCHEMES["red_jeans"].hair


def test_colour_is_scheme_colour_times_lambert_shading(scene):
    body, vertices, cameras = scene
    camera = cameras[128]
    scheme = COLOUR_SCHEMES["green_khaki"]
    colours = body_colours(body, scheme)
    cam_vertices = camera.world_to_camera(vertices)
    fragments = rasterize(camera.project(cam_vertices), body.faces, 128, 128)
    normals = vertex_normals(cam_vertices, body.faces)
    frames = render_fragments_appearance(fragments, body.faces, normals, colours, scheme.background)
    # pixels inside one region (all three corners the same colour): exactly colour x shading, in linear light
    corners = colours[body.faces[fragments.visible_face]]                         # (P, 3, 3)
    inside = (corners == corners[:, :1]).all(-1).all(-1)
    s = shading(fragments, body.faces, normals)
    expected = to_byte(linear_to_srgb(srgb_to_linear(corners[:, 0].float() / 255) * s[:, None]))
    got = frames.reshape(-1, 3)[fragments.pixels]
    assert inside.float().mean() > 0.9
    assert (got[inside].int() - expected[inside].int()).abs().max() <= 1
    # where the chest's normal faces the key light, the pixel IS the top colour; shadowed sides are darker
    chest = inside & (body.part_labels[body.faces[fragments.visible_face, 0]] == 9)
    best = torch.where(chest, s, torch.zeros_like(s)).argmax()
    assert s[best] > 0.99 and (got[best].int() - torch.tensor(scheme.top)).abs().max() <= 1
    assert s.min() >= DEFAULT_LIGHT.ambient - 1e-6
    assert got[chest].float().mean() < torch.tensor(scheme.top).float().mean()


@pytest.mark.parametrize("size", [128, 256])
def test_background_exact_and_silhouette_is_the_maps_mask(scene, size):
    body, vertices, cameras = scene
    camera = cameras[size]
    scheme = COLOUR_SCHEMES["white_red"]
    maps = render_mesh_maps(vertices, body.faces, part_colors(body.part_labels), camera)
    mask = maps["mask"] > 0
    bg = background_image(scheme.background, size, size)
    assert bg[0, 0].tolist() != bg[-1, 0].tolist()                               # a vertical gradient
    colours = body_colours(body, scheme)
    hard, cover1 = render_appearance(vertices, body.faces, colours, camera, scheme=scheme, supersample=1,
                                     return_coverage=True)
    assert torch.equal(cover1 > 0, mask)                                          # the same rasterisation
    assert torch.equal(hard[~mask], bg.expand_as(hard)[~mask])
    soft, cover = render_appearance(vertices, body.faces, colours, camera, scheme=scheme, return_coverage=True)
    assert torch.equal(soft[cover == 0], bg.expand_as(soft)[cover == 0])
    fg = cover >= 0.5
    iou = (fg & mask).sum() / (fg | mask).sum()
    assert iou > (0.95 if size == 128 else 0.97), float(iou)
    inner = cover == 1                                   # fully covered: the hard render, up to 2x2 averaging
    assert (soft[inner].float() - hard[inner].float()).abs().mean() < 3
    # the maps' own fragments when one sample per pixel (iter_pose_maps shares them)
    from m2pdance.m2penc.render.appearance import Appearance
    shared = render_mesh_maps(vertices, body.faces, part_colors(body.part_labels), camera,
                              Appearance.of(body, scheme, supersample=1))["appearance"]
    assert torch.equal(shared, hard)


def test_reference_photo_framed_like_training(scene):
    photo = reference_photo("red_jeans", 128)
    assert photo.shape == (128, 128, 3) and photo.dtype == torch.uint8
    bg = background_image(COLOUR_SCHEMES["red_jeans"].background, 128, 128)
    rows, cols = (photo != bg).any(-1).nonzero().unbind(1)
    height = int(rows.max() - rows.min() + 1)
    assert 0.75 * 128 <= height <= 0.85 * 128                                    # DEFAULT_FILL of the frame
    assert 6 <= int(rows.min()) and int(rows.max()) <= 128 - 6                    # full body, feet near the bottom
    assert abs(float(cols.float().mean()) - 64) < 4                               # centred
    assert abs(int(rows.max()) - (127 - int(rows.min()))) <= 2
