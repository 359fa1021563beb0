"""Letterbox in, letterbox out: maps and boxes land on the original image's pixels."""
import numpy as np
import pytest

from yolo_attn.heatmaps.images import letterbox_tensor
from yolo_attn.heatmaps.metrics import box_mask, heat_in_box, renormalize_in_box


@pytest.mark.parametrize("h,w,imgsz", [(72, 120, 64), (120, 72, 64), (100, 100, 96), (37, 201, 160)])
def test_map_and_boxes_round_trip_through_the_letterbox(h, w, imgsz):
    img = np.zeros((h, w, 3), np.uint8)
    x, frame = letterbox_tensor(img, imgsz, 32)
    assert tuple(x.shape[2:]) == frame.shape and max(frame.shape) == imgsz
    # a box in original pixels, where it lands in the input, and a map that is 1 exactly there
    box = np.array([0.2 * w, 0.3 * h, 0.6 * w, 0.9 * h])
    left, top = frame.pad
    in_input = box * frame.gain + np.array([left, top, left, top])
    np.testing.assert_allclose(frame.boxes_to_original(in_input)[0], box, atol=1e-6)
    m = box_mask(frame.shape, in_input).astype(np.float32)
    back = frame.map_to_original(m)
    assert back.shape == (h, w)
    inside = box_mask((h, w), box)
    # away from the box edge (bilinear resampling blurs about one input pixel), the map is 1 inside, 0 outside
    edge = 1.5 / frame.gain + 1
    core = box_mask((h, w), box + np.array([edge, edge, -edge, -edge]))
    far = ~box_mask((h, w), box + np.array([-edge, -edge, edge, edge]))
    assert back[core].min() > 0.99 and back[far].max() < 0.01
    assert heat_in_box(back, box)[2] > 10
    assert inside.sum() > 0


def test_padding_is_dropped_not_squeezed():
    """A map that is hot only in the letterbox padding contributes nothing on the original image."""
    img = np.zeros((40, 160, 3), np.uint8)  # very wide: the letterbox pads above and below
    x, frame = letterbox_tensor(img, 160, 32)
    left, top = frame.pad
    assert top > 0
    m = np.zeros(frame.shape, np.float32)
    m[:top] = 1
    m[top + frame.unpadded[1]:] = 1
    assert frame.map_to_original(m).max() == 0


def test_heat_in_box_and_renormalize():
    heat = np.zeros((10, 20), np.float32)
    heat[2:5, 3:8] = 1.0
    heat[8, 15] = 0.5
    mean_in, mean_out, ratio = heat_in_box(heat, (3, 2, 8, 5))
    assert mean_in == 1.0 and mean_out == pytest.approx(0.5 / (200 - 15))
    r = renormalize_in_box(heat, (3, 2, 10, 6))
    assert r[8, 15] == 0 and r.max() == pytest.approx(1.0, abs=1e-6) and r[5, 9] == 0
    assert np.isnan(heat_in_box(heat, (0, 0, 20, 10))[2])  # a box covering everything has no outside


@pytest.mark.parametrize("h,w,imgsz,stride", [(72, 120, 64, 32), (120, 72, 64, 32), (100, 100, 96, 32),
                                              (37, 201, 160, 32), (480, 640, 640, 32), (333, 517, 320, 64),
                                              (64, 64, 64, 32), (1000, 30, 128, 32)])
def test_the_letterbox_is_yolov5s_pixel_for_pixel(h, w, imgsz, stride):
    """Written here (not asked of an engine) and the same, pixel for pixel, as yolov5's for every model."""
    import yolo_attn  # noqa: F401  (yolov5 imports after yolo-attn's patches)
    from yolov5.utils.augmentations import letterbox as yolov5_letterbox

    from yolo_attn.heatmaps.images import letterbox

    img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ours, gain, pad = letterbox(img, imgsz, stride)
    theirs, ratio, their_pad = yolov5_letterbox(img, imgsz, stride=stride, auto=True)
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs)
    assert (gain, gain) == ratio and pad == their_pad


def test_image_suffixes_and_size_rounding_are_yolov5s(capsys):
    import yolo_attn  # noqa: F401
    from yolov5.utils.dataloaders import IMG_FORMATS as YOLOV5_FORMATS
    from yolov5.utils.general import check_img_size as yolov5_check_img_size

    from yolo_attn.heatmaps.images import IMG_FORMATS
    from yolo_attn.heatmaps.run import check_img_size

    assert IMG_FORMATS == YOLOV5_FORMATS
    for size in (32, 63, 64, 65, 100, 640, 641):
        for stride in (32, 64):
            assert check_img_size(size, stride) == yolov5_check_img_size(size, s=stride)
    capsys.readouterr()
    assert check_img_size(70, 32) == 96
    assert capsys.readouterr().err == "WARNING ⚠️ --img-size 70 must be multiple of max stride 32, updating to 96\n"
