"""The z-buffer rasteriser against analytic ray casts: silhouettes, perspective-correct depth,
batching, chunking, culling, fp16 input, clipping and errors."""
from __future__ import annotations

import pytest
import torch

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.render.primitives import box, merge, uv_sphere
from m2pdance.m2penc.render.rasterize import rasterize

SPHERE_CENTER, SPHERE_RADIUS = (0.1, -0.1, 3.5), 0.8


@pytest.fixture(scope="module")
def sphere():
    return uv_sphere(SPHERE_CENTER, SPHERE_RADIUS, rings=64, segments=128)


def _raster(mesh, camera, vertices=None, **kwargs):
    v = mesh.vertices[None] if vertices is None else vertices
    return rasterize(camera.to_screen(v), mesh.faces, camera.height, camera.width, **kwargs)


def test_sphere_silhouette_within_one_pixel(sphere, camera, analytic):
    frags = _raster(sphere, camera)
    hit, _, _ = analytic.ray_sphere(camera, SPHERE_CENTER, SPHERE_RADIUS)
    assert frags.face.shape == (1, camera.height, camera.width) and frags.face.dtype == torch.long
    assert analytic.within_one_pixel(frags.mask[0], hit)
    assert abs(int(frags.mask.sum()) - int(hit.sum())) < 0.01 * int(hit.sum())


def test_sphere_depth_is_perspective_correct(sphere, camera, analytic):
    frags = _raster(sphere, camera)
    hit, z, _ = analytic.ray_sphere(camera, SPHERE_CENTER, SPHERE_RADIUS)
    inner = analytic.interior(hit & frags.mask[0], 2)
    error = (frags.dense_depth()[0].double() - z)[inner].abs()
    # Facets sit inside the sphere by at most r (1 - cos(pi / 64)) = 1 mm here.
    assert float(error.max()) < 1.5e-3
    assert torch.allclose(frags.bary.sum(1), torch.ones(frags.bary.shape[0]), atol=1e-5)
    assert torch.equal(frags.dense_bary()[frags.mask], frags.bary)
    assert float(frags.bary.min()) > -1e-4


def test_box_depth_and_silhouette_are_exact(camera, analytic):
    center, size, yaw = (-0.1, 0.1, 4.0), (1.0, 1.2, 0.8), 0.5
    mesh = box((0, 0, 0), size)
    vertices = (mesh.vertices @ analytic.rotation_y(yaw).T + torch.tensor(center))[None]
    frags = _raster(mesh, camera, vertices)
    hit, z = analytic.ray_box(camera, center, size, yaw)
    assert analytic.within_one_pixel(frags.mask[0], hit)
    inner = analytic.interior(hit & frags.mask[0], 1)
    assert float((frags.dense_depth()[0].double() - z)[inner].abs().max()) < 1e-4   # planar faces: exact


def test_batched_equals_per_frame(sphere, camera):
    offsets = torch.tensor([[0.0, 0.0, 0.0], [0.4, -0.2, 0.5], [-0.3, 0.3, -0.4]])
    vertices = sphere.vertices[None] + offsets[:, None]
    batched = _raster(sphere, camera, vertices)
    for i in range(3):
        single = _raster(sphere, camera, vertices[i:i + 1])
        assert torch.equal(batched.face[i], single.face[0])
        in_frame = batched.batch_index == i
        assert torch.equal(batched.bary[in_frame], single.bary)
        assert torch.equal(batched.depth[in_frame], single.depth)


def test_chunking_and_culling_do_not_change_the_image(sphere, camera):
    reference = _raster(sphere, camera)
    chunked = _raster(sphere, camera, max_pairs=50)
    assert torch.equal(chunked.face, reference.face) and torch.equal(chunked.depth, reference.depth)
    unculled = _raster(sphere, camera, cull_backfaces=False)
    assert torch.equal(unculled.mask, reference.mask)
    assert float((unculled.face == reference.face).double().mean()) > 0.999


def test_fp16_input_within_tolerance(sphere, camera, analytic):
    """fp16 screen vertices (0.06 px, 2 mm steps here) are upcast: same image up to their own rounding."""
    screen = camera.to_screen(sphere.vertices[None])
    full = rasterize(screen, sphere.faces, camera.height, camera.width)
    half = rasterize(screen.half(), sphere.faces, camera.height, camera.width)
    assert half.depth.dtype == torch.float32 and half.bary.dtype == torch.float32
    assert analytic.within_one_pixel(half.mask[0], full.mask[0])
    inner = analytic.interior((full.mask & half.mask)[0], 3)              # off the steep rim
    assert float((full.dense_depth() - half.dense_depth())[0][inner].abs().max()) < 5e-3


def test_big_triangles_cover_the_whole_image(camera):
    """A tilted plane through the image: two triangles far larger than the image, clipped boxes."""
    quad = torch.tensor([[[-5.0, -5.0, 3.0], [-5.0, 5.0, 5.0], [5.0, 5.0, 5.0], [5.0, -5.0, 3.0]]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    frags = rasterize(camera.to_screen(quad), faces, camera.height, camera.width)
    assert bool(frags.mask.all())
    rays = torch.stack(torch.meshgrid(torch.arange(camera.height) + 0.5, torch.arange(camera.width) + 0.5,
                                      indexing="ij"), -1).double()
    dy = (rays[..., 0] - camera.cy) / camera.fy
    z = 4.0 / (1 - 0.2 * dy)                              # plane z = 4 + 0.2 y, ray y = z dy
    assert float((frags.dense_depth()[0].double() - z).abs().max()) < 1e-4


def test_near_plane_and_off_screen_geometry(sphere, camera, analytic):
    behind = _raster(sphere, camera, sphere.vertices[None] * torch.tensor([1.0, 1.0, -1.0]))
    assert not bool(behind.mask.any()) and behind.pixels.numel() == 0
    shifted = (1.2, 0.0, 3.5)                                    # half outside on the right
    frags = _raster(sphere, camera, (sphere.vertices + torch.tensor(shifted) - torch.tensor(SPHERE_CENTER))[None])
    hit, _, _ = analytic.ray_sphere(camera, shifted, SPHERE_RADIUS)
    assert analytic.within_one_pixel(frags.mask[0], hit) and bool(frags.mask[0, :, -1].any())


def test_nearest_surface_wins(camera):
    """Two boxes overlapping on screen: the nearer one is seen."""
    scene = merge([box((0, 0, 5.0), (1, 1, 0.2)), box((0.3, 0.3, 3.0), (0.4, 0.4, 0.2))])
    frags = _raster(scene, camera)
    centre = frags.face[0, int(camera.cy + 0.3 / 3.0 * camera.fy), int(camera.cx + 0.3 / 3.0 * camera.fx)]
    assert int(centre) >= 12                                     # a face of the second (near) box
    assert abs(float(frags.dense_depth()[0, int(camera.cy), int(camera.cx) - 20]) - 4.9) < 1e-4


@pytest.mark.parametrize("screen, faces, message", [
    (torch.zeros(4, 3), torch.zeros(1, 3, dtype=torch.long), "batch, vertices, 3"),
    (torch.zeros(1, 4, 3), torch.zeros(1, 3), "integer"),
    (torch.zeros(1, 4, 3), torch.zeros(1, 4, dtype=torch.long), "integer"),
])
def test_bad_inputs_name_the_problem(screen, faces, message):
    with pytest.raises(InputError, match=message):
        rasterize(screen, faces, 8, 8)


@pytest.mark.parametrize("far", [1e3, 1e6, 1e7, 3e9])
def test_a_far_vertex_does_not_bleed_past_the_near_edges(far):
    """One vertex far off-screen (a corner near the camera plane): coverage stays exact on the image."""
    screen = torch.tensor([[[far, 0.2, 2.0], [0.3, 8.0, 2.0], [8.0, 0.2, 2.0]]])
    frags = rasterize(screen, torch.tensor([[0, 2, 1]]), 8, 8, cull_backfaces=False)
    ys, xs = torch.meshgrid(torch.arange(8.0) + 0.5, torch.arange(8.0) + 0.5, indexing="ij")
    # inside: right of the edge (0.3, 8) -> (8, 0.2), below y = 0.2, above the long edge to the far vertex
    near_edge = (8.0 - 0.3) * (ys - 8.0) - (0.2 - 8.0) * (xs - 0.3) > 0
    far_edge = (far - 0.3) * (ys - 8.0) - (0.2 - 8.0) * (xs - 0.3) < 0
    expected = near_edge & far_edge & (ys > 0.2)
    assert torch.equal(frags.mask[0], expected), (frags.mask[0].int(), expected.int())
