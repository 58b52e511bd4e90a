"""Reference photos of every shape users supply become one RGB (1, 3, H, W) image, or a clear error."""
import pytest
import torch

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.reference_image import prepare_reference, to_rgb


def test_rgba_is_composited_over_white_and_gray_repeated():
    rgba = torch.zeros(1, 4, 4, 4)
    rgba[..., 0] = 1.0  # red
    rgba[0, :2, :, 3] = 1.0  # top half opaque, bottom transparent
    rgb = to_rgb(rgba)
    assert torch.equal(rgb[0, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(rgb[0, 3, 0], torch.tensor([1.0, 1.0, 1.0]))
    gray = torch.full((1, 4, 4, 1), 0.25)
    assert torch.equal(to_rgb(gray), torch.full((1, 4, 4, 3), 0.25))


def test_odd_sizes_are_cropped_to_aspect_not_stretched():
    image = torch.zeros(1, 100, 300, 3)
    image[:, :, 100:200] = 1.0  # a white band in the centre third
    out = prepare_reference(image, 64, 64)
    assert out.shape == (1, 3, 64, 64)
    assert out.mean() > 0.95  # the centre square crop is the white band


def test_batch_uses_first_image():
    batch = torch.stack([torch.zeros(64, 64, 3), torch.ones(64, 64, 3)])
    assert prepare_reference(batch, 64, 64).max() == 0


@pytest.mark.parametrize("image,match", [
    (torch.zeros(1, 1, 1, 3), "at least"),
    (torch.zeros(1, 64, 64, 5), "channels"),
    (torch.full((1, 64, 64, 3), float("nan")), "NaN"),
    (torch.zeros(1, 64, 64, 3, dtype=torch.uint8), "float"),
])
def test_bad_reference_images_are_refused(image, match):
    with pytest.raises(InputError, match=match):
        prepare_reference(image, 64, 64)


def test_size_must_be_multiple_of_8():
    with pytest.raises(InputError, match="multiples of 8"):
        prepare_reference(torch.zeros(1, 64, 64, 3), 60, 64)
