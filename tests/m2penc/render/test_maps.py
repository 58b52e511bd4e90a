"""Champ's map conventions checked numerically on analytic scenes (GUIDANCE_MAPS.md sections 1-3)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.render.maps import (
    depth_map, gray_to_rgb, linear_to_srgb, mask_map, normal_map, semantic_map, srgb_to_linear, to_image,
)
from m2pdance.m2penc.render.palettes import SEMANTIC_PALETTE_RGB, part_colors
from m2pdance.m2penc.render.primitives import box, merge, uv_sphere

CENTER, RADIUS = (0.1, -0.1, 3.5), 0.8


@pytest.fixture(scope="module")
def sphere():
    return uv_sphere(CENTER, RADIUS, rings=64, segments=128, label=9)


def _maps(mesh, camera, analytic, vertices=None):
    frags, normals = analytic.render_world(mesh.vertices[None] if vertices is None else vertices, mesh.faces, camera)
    return frags, {"depth": depth_map(frags), "normal": normal_map(frags, mesh.faces, normals),
                   "semantic": semantic_map(frags, mesh.faces, part_colors(mesh.labels)), "mask": mask_map(frags)}


def test_palette_is_champs(shared_dir):
    spec = json.loads((shared_dir / "spec/champ/guidance_palettes.json").read_text())
    assert [tuple(p["rgb"]) for p in spec["semantic_map"]["parts"]] == list(SEMANTIC_PALETTE_RGB)
    assert SEMANTIC_PALETTE_RGB[0] == (68, 1, 84) and SEMANTIC_PALETTE_RGB[15] == (33, 165, 133)
    assert part_colors(torch.tensor([0, 23])).tolist() == [[68, 1, 84], [189, 223, 38]]


def test_sphere_normals_within_two_degrees(sphere, camera, analytic):
    frags, maps = _maps(sphere, camera, analytic)
    hit, _, normal = analytic.ray_sphere(camera, CENTER, RADIUS)
    inner = analytic.interior(hit & frags.mask[0], 2)
    decoded = analytic.decode_normals(maps["normal"][0])
    angle = torch.rad2deg(torch.acos((decoded * normal).sum(-1).clamp(-1, 1)))[inner]
    assert float(angle.max()) < 2.0 and float(angle.median()) < 0.5


def test_camera_facing_surface_is_128_128_255(camera, analytic):
    frags, maps = _maps(box((0, 0, 4.0), (1, 1, 1)), camera, analytic)
    inner = analytic.interior(frags.mask[0], 1)
    assert (maps["normal"][0][inner] == torch.tensor([128, 128, 255], dtype=torch.uint8)).all()


def test_tilted_box_faces_have_their_normals(camera, analytic):
    yaw = 0.5
    mesh = box((0, 0, 0), (1.0, 1.2, 0.8))
    vertices = (mesh.vertices @ analytic.rotation_y(yaw).T + torch.tensor([-0.1, 0.1, 4.0]))[None]
    frags, maps = _maps(mesh, camera, analytic, vertices)
    decoded = analytic.decode_normals(maps["normal"][0])[analytic.interior(frags.mask[0], 1)]
    front = torch.tensor([-math.sin(yaw), 0.0, -math.cos(yaw)], dtype=torch.float64)   # R_y(yaw) @ (0, 0, -1)
    side = torch.tensor([math.cos(yaw), 0.0, -math.sin(yaw)], dtype=torch.float64)     # R_y(yaw) @ (1, 0, 0)
    best = torch.maximum(decoded @ front, decoded @ side)
    assert float(torch.rad2deg(torch.acos(best.clamp(max=1))).max()) < 1.0


def test_depth_is_linear_255_near_0_far(sphere, camera, analytic):
    frags, maps = _maps(sphere, camera, analytic)
    depth = maps["depth"][0]
    assert depth.dtype == torch.uint8 and depth.shape == (camera.height, camera.width)
    hit, z, _ = analytic.ray_sphere(camera, CENTER, RADIUS)
    near, far = float(frags.depth.min()), float(frags.depth.max())
    expected = torch.floor(255 * (far - z) / (far - near) + 0.5)         # the analytic map, as bytes
    inner = analytic.interior(hit & frags.mask[0], 2)
    assert float((depth.double() - expected)[inner].abs().max()) <= 1.0
    assert int(depth.max()) == 255 and int(depth[frags.mask[0]].min()) == 0
    nearest_pixel = torch.where(frags.dense_depth()[0] == near)
    assert int(depth[nearest_pixel].min()) == 255 and abs(near - float(z[hit].min())) < 2e-3


def test_box_depth_matches_the_analytic_linear_map(camera, analytic):
    center, size, yaw = (-0.1, 0.1, 4.0), (1.0, 1.2, 0.8), 0.5
    mesh = box((0, 0, 0), size)
    vertices = (mesh.vertices @ analytic.rotation_y(yaw).T + torch.tensor(center))[None]
    frags, maps = _maps(mesh, camera, analytic, vertices)
    hit, z = analytic.ray_box(camera, center, size, yaw)
    seen = hit & frags.mask[0]
    near, far = float(z[seen].min()), float(z[seen].max())
    expected = torch.floor(255 * (far - z) / (far - near) + 0.5)[seen]
    assert float((maps["depth"][0][seen].double() - expected).abs().max()) <= 1.0


def test_every_background_is_black_and_mask_binary(sphere, camera, analytic):
    frags, maps = _maps(sphere, camera, analytic)
    background = ~frags.mask[0]
    for name, image in maps.items():
        assert int(image[0][background].max()) == 0, name
    assert set(maps["mask"].unique().tolist()) == {0, 255}
    assert (maps["semantic"][0][frags.mask[0]] == torch.tensor(SEMANTIC_PALETTE_RGB[9], dtype=torch.uint8)).all()


def test_parts_land_on_their_pixels(camera, analytic):
    scene = merge([box((-0.5, 0, 4.0), (0.6, 1, 0.5), label=3), box((0.5, 0, 4.0), (0.6, 1, 0.5), label=20)])
    frags, maps = _maps(scene, camera, analytic)
    inner = analytic.interior(frags.mask[0], 1)
    left, right = inner.clone(), inner.clone()
    left[:, camera.width // 2:] = False
    right[:, :camera.width // 2] = False
    assert (maps["semantic"][0][left] == torch.tensor(SEMANTIC_PALETTE_RGB[3], dtype=torch.uint8)).all()
    assert (maps["semantic"][0][right] == torch.tensor(SEMANTIC_PALETTE_RGB[20], dtype=torch.uint8)).all()


def test_colours_blend_in_linear_light_across_a_triangle(camera, analytic):
    """A quad facing the camera, part 0 on its left edge and part 23 on its right (as Cycles blends)."""
    quad = box((0, 0, 4.0), (2.0, 2.0, 0.01))
    quad.labels = (quad.vertices[:, 0] > 0).long() * 23
    frags, maps = _maps(quad, camera, analytic)
    a, b = (torch.tensor(SEMANTIC_PALETTE_RGB[k], dtype=torch.float64) / 255 for k in (0, 23))
    x = camera.fx * torch.tensor([-1.0, 1.0]) / 3.995 + camera.cx          # the front face spans these columns
    col = int(camera.cx)
    t = (col + 0.5 - float(x[0])) / float(x[1] - x[0])
    expected = 255 * linear_to_srgb((1 - t) * srgb_to_linear(a) + t * srgb_to_linear(b))
    assert float((maps["semantic"][0, int(camera.cy), col].double() - expected).abs().max()) <= 1.0


def test_ints_to_comfy_images():
    gray = torch.tensor([[[0, 128], [255, 3]]], dtype=torch.uint8)
    image = to_image(gray)
    assert image.shape == (1, 2, 2, 3) and image.dtype == torch.float32
    assert torch.equal((image * 255).round().to(torch.uint8), gray_to_rgb(gray))
    with pytest.raises(InputError, match="uint8"):
        to_image(image)
    with pytest.raises(InputError, match="0..23"):
        part_colors(torch.tensor([24]))
    assert torch.allclose(linear_to_srgb(srgb_to_linear(torch.linspace(0, 1, 256))), torch.linspace(0, 1, 256), atol=1e-6)


def test_fp16_world_vertices_give_the_same_maps(sphere, camera, analytic):
    """fp16 vertices (2 mm steps at 3.5 m) change only silhouette pixels and the last levels: depth 2,
    normals 4 (the normals come from the rounded 4 cm triangles: up to ~1.5 degrees), colours none."""
    frags, full = _maps(sphere, camera, analytic)
    frags16, half = _maps(sphere, camera, analytic, sphere.vertices[None].half())
    assert analytic.within_one_pixel(frags16.mask[0], frags.mask[0])
    inner = analytic.interior(frags.mask[0] & frags16.mask[0], 2)
    for name, tolerance in (("depth", 2), ("normal", 4), ("semantic", 0)):
        diff = (full[name][0].int() - half[name][0].int()).abs()[inner]
        assert int(diff.max()) <= tolerance, name
