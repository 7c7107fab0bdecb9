"""The shared conventions (pipeline.conventions): the model's crop projection, the renderer and predict's
full-image camera put the same body point on the same pixel (to < 0.1 px), under one pixel-centre rule."""

import numpy as np
import pytest
import torch

from model import inference
from model.camera import project
from pipeline import conventions as cv
from pipeline.crop import apply_affine, crop_transform
from pipeline.render.cameras import WeakPerspectiveCamera
from pipeline.render.rasterize import rasterize

SIZE = cv.NETWORK_CROP
CAM = np.array([[0.9, 0.05, -0.1]])  # (s, tx, ty): a body filling about 90 % of the crop


def body_points(count: int = 400, seed: int = 0) -> np.ndarray:
    """(1, count, 3) points of a 0.5 x 1.7 x 0.3 m box around the origin (a standing person's extent)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.5, 0.5, (count, 3)) * [0.5, 1.7, 0.3])[None]


def model_crop_pixels(points: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """The model's projection (normalised [-1, 1] crop coordinates) turned into crop pixels by hand:
    normalised 0 is the crop centre 111.5 (pixel centres at integers), +-1 the crop's outer edges."""
    normalised = project(torch.as_tensor(points), torch.as_tensor(cam)).numpy()
    return normalised * (SIZE / 2) + (SIZE - 1) / 2


def test_hand_values():
    assert cv.pixel_centre(224) == 111.5 and cv.screen_centre(224) == 112.0
    assert cv.pixel_centre(224) + cv.SCREEN_OFFSET == cv.screen_centre(224)
    assert cv.crop_focal(224) == 5000.0 and cv.crop_focal(448, 2.0) == 5000.0
    assert cv.crop_focal(64) == pytest.approx(5000.0 * 64 / 224)
    # s = 1 fills the crop with a 2 m wide body at depth 2 f / 224 = 44.64 m: 2 m * f / depth = 224 px
    t = cv.weak_perspective_translation(np.array([[1.0, 0.3, -0.2]]))
    np.testing.assert_allclose(t, [[0.3, -0.2, 10000.0 / 224.0]])
    assert cv.BOX_PADDING == 1.2 and cv.BBOX_UNIT == 200.0 and cv.RENDER_CROP_MARGIN == 1.2


def test_numpy_and_torch_translations_agree():
    cam = np.array([[0.8, 0.1, 0.2], [1.3, -0.4, 0.0]])
    np.testing.assert_allclose(
        cv.weak_perspective_translation(torch.as_tensor(cam)).numpy(), cv.weak_perspective_translation(cam)
    )


def test_crop_projection_and_renderer_camera_agree():
    points = body_points()
    model_px = model_crop_pixels(points, CAM)
    screen = WeakPerspectiveCamera(torch.as_tensor(CAM)).to_screen(torch.as_tensor(points), SIZE, SIZE)
    renderer_px = screen[..., :2].numpy() - cv.SCREEN_OFFSET
    assert np.abs(renderer_px - model_px).max() < 0.1
    # the same camera at twice the resolution: every pixel coordinate doubles about the pixel grid
    big = WeakPerspectiveCamera(torch.as_tensor(CAM), crop_size=2 * SIZE).to_screen(
        torch.as_tensor(points), 2 * SIZE, 2 * SIZE
    )
    assert np.abs(big[..., :2].numpy() / 2 - screen[..., :2].numpy()).max() < 1e-3


def test_rasterizer_samples_pixel_centres_of_the_model_projection():
    """A fronto-parallel square rasterized through the renderer's camera: at every covered pixel the
    barycentric blend of its corners' *model* crop pixels is that pixel's own integer (column, row)."""
    corners = np.array([[[-0.3, -0.3, 0.0], [0.3, -0.3, 0.0], [0.3, 0.3, 0.0], [-0.3, 0.3, 0.0]]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    screen = WeakPerspectiveCamera(torch.as_tensor(CAM)).to_screen(torch.as_tensor(corners), SIZE, SIZE)
    frags = rasterize(screen.float(), faces, SIZE, SIZE, backend="torch")
    rows, cols = torch.nonzero(frags.mask[0], as_tuple=True)
    assert len(rows) > 1000
    corner_px = torch.as_tensor(model_crop_pixels(corners, CAM)[0])  # (4, 2)
    face = faces[frags.face_index[0, rows, cols]]  # (P, 3)
    blended = (frags.bary[0, rows, cols].double()[..., None] * corner_px[face]).sum(1)
    expected = torch.stack([cols, rows], dim=-1).double()
    assert (blended - expected).abs().max() < 0.1


@pytest.mark.parametrize("center", [(320.0, 240.0), (520.0, 130.0), (100.0, 110.0)])
def test_predict_full_image_camera_agrees_with_the_crop(center):
    """A 640 x 480 photo, a 220 px person box at the centre and in two corners (inside the image): the
    full-image camera of predict puts every body point within 0.1 px of where the crop camera puts it,
    mapped through the crop affine. (A box overhanging the corner, centre (560, 90), reaches 0.11 px: the
    rotation only approximates the depth shear, see model.inference.full_image_camera.)"""
    points = body_points(seed=1)
    matrix = crop_transform(np.array(center), 1.1, SIZE)
    camera = inference.full_image_camera(points, CAM, matrix[None], (480, 640))
    image_frame = inference.to_image_frame(points, camera)
    image_px = image_frame[..., :2] / image_frame[..., 2:3] * camera["focal"][:, None, None]
    image_px = image_px + camera["principal"][:, None]
    np.testing.assert_allclose(camera["principal"][0], [319.5, 239.5])  # pixel centres at integers
    crop_px = apply_affine(matrix, image_px[0])
    assert np.linalg.norm(crop_px - model_crop_pixels(points, CAM)[0], axis=-1).max() < 0.1
    assert camera["residual_px"][0] < 0.1
