"""The gather-based bilinear sampler (the ONNX path) computes what F.grid_sample (bilinear, zeros) computes, in and
outside the map."""
import pytest
import torch
import torch.nn.functional as F

from yolo_attn.modules._sampling import gather_bilinear


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("h, w", [(5, 7), (1, 1), (1, 6), (9, 2)])
def test_matches_grid_sample(align_corners, h, w):
    g = torch.Generator().manual_seed(h * 10 + w)
    image = torch.randn(3, 4, h, w, generator=g, dtype=torch.float64)
    grid = torch.rand(3, 6, 5, 2, generator=g, dtype=torch.float64) * 2.6 - 1.3  # some points beyond the border
    grid[0, 0, :3] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)  # corners, centre
    expected = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)
    got = gather_bilinear(image, grid, align_corners)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_half_image_float32_grid_gives_the_image_dtype():
    image = torch.randn(1, 2, 4, 4).half()
    grid = torch.rand(1, 3, 3, 2) * 2 - 1
    got = gather_bilinear(image, grid, False)
    expected = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float(), expected, rtol=2e-3, atol=2e-3)
