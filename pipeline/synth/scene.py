"""Synthetic scenes of the open body: clothing colours, backgrounds, lighting, camera, and the annotations.

One call renders a batch: poses and shapes are sampled, the body is posed in the camera frame, placed at a
random position and size in the image, shaded with per-part clothing colours (plus hair and a chest print,
the cues that tell a person's front from their back) in front of a random background, and annotated the
way SPIN's .npz files are (center, scale, 2D/3D keypoints, SMPL fit).
Every random choice comes from the per-batch numpy Generator, so a batch is a pure function of its seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.special
import torch

from pipeline.body.constants import NUM_BETAS, NUM_PARTS
from pipeline.body.model import BodyModel
from pipeline.body.parts import DenseParts
from pipeline.conventions import BBOX_UNIT, BOX_PADDING, crop_focal, pixel_centre, screen_centre
from pipeline.render.cameras import PerspectiveCamera
from pipeline.render.shade import render_shaded
from pipeline.synth.poses import camera_frame_global_orient, euler_to_axis_angle, sample_body_poses

# Clothing groups over DensePose parts: what each part wears.
_SHIRT = (1, 2, 15, 16, 17, 18)
_SLEEVES = (19, 20, 21, 22)
_SKIN = (3, 4, 23, 24)
_TROUSERS = (7, 8, 9, 10)
_LOWER_LEGS = (11, 12, 13, 14)
_SHOES = (5, 6)
_HEAD = (23, 24)
_TORSO_FRONT = 2


@dataclass(frozen=True)
class SceneBatch:
    """images: (B, H, W, 3) uint8 RGB; annotations: SPIN-style arrays with B rows; templates: pose names."""

    images: np.ndarray
    annotations: dict[str, np.ndarray]
    templates: list[str]


def clothing_colours(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 25, 3) RGB in [0, 1] per DensePose part: shirt, skin, trousers, shoes; sleeve/trouser lengths vary."""
    colours = np.zeros((count, NUM_PARTS + 1, 3))
    skin = rng.uniform([0.35, 0.22, 0.15], [0.95, 0.78, 0.65], (count, 3))
    shirt, trousers, shoes = (rng.uniform(0.05, 0.95, (count, 3)) for _ in range(3))
    long_sleeves = rng.random(count) < 0.5
    shorts = rng.random(count) < 0.3
    for parts, colour in ((_SHIRT, shirt), (_SKIN, skin), (_TROUSERS, trousers), (_SHOES, shoes)):
        colours[:, parts] = colour[:, None]
    colours[:, _SLEEVES] = np.where(long_sleeves[:, None], shirt, skin)[:, None]
    colours[:, _LOWER_LEGS] = np.where(shorts[:, None], skin, trousers)[:, None]
    return colours


def front_back_regions(rest_face_centres: np.ndarray, face_part: np.ndarray) -> dict[str, np.ndarray]:
    """(F,) bool masks of the faces that carry a person's front/back cues, from the rest-pose face centres.

    rest_face_centres: (F, 3) metres in the body frame at zero pose and shape (y up, facing +z, origin near
    the pelvis; the open body's head spans y 0.52-0.81 and z -0.06-0.16). Returns "hair": the back and the
    crown of the head; "chest": a patch on the front of the torso, where shirts have prints and buttons.
    Real people look different from the front and the back (a face, hair, a shirt front); without these cues a
    clothed silhouette is front/back ambiguous and the left and right limbs with it.
    """
    x, y, z = rest_face_centres.T
    head = np.isin(face_part, _HEAD)
    crown = y > np.quantile(y[head], 0.8)
    back_of_skull = (z < np.quantile(z[head], 0.35)) & (y > np.quantile(y[head], 0.3))
    front = face_part == _TORSO_FRONT
    chest_y = np.quantile(y[front], [0.55, 0.85])
    chest = front & (np.abs(x) < 0.4 * np.abs(x[front]).max()) & (y > chest_y[0]) & (y < chest_y[1])
    return {"hair": head & (crown | back_of_skull), "chest": chest}


def add_front_back_cues(
    rng: np.random.Generator, face_colours: np.ndarray, regions: dict[str, np.ndarray]
) -> np.ndarray:
    """(B, F, 3) per-face colours -> the same with hair (always) and a chest print (70 % of people)."""
    out = face_colours.copy()
    count = out.shape[0]
    hair = rng.uniform([0.02, 0.02, 0.02], [0.55, 0.45, 0.3], (count, 3))  # black to fair, mostly dark
    prints = rng.uniform(0.05, 0.95, (count, 3))
    has_print = rng.random(count) < 0.7
    out[:, regions["hair"]] = hair[:, None]
    out[np.ix_(has_print, regions["chest"])] = prints[has_print][:, None]
    return out


@functools.lru_cache(maxsize=4)
def _gaussian_table(sigma: float) -> np.ndarray:
    """(256,) int8: the Gaussian(0, sigma) quantile of each byte value's probability cell (inverse CDF).

    A uniform random byte looked up here is Gaussian noise quantised to whole grey levels (tails cut at
    ~2.7 sigma); drawing bytes and looking them up is ~10x faster than numpy's normal sampler per pixel.
    """
    quantiles = scipy.special.ndtri((np.arange(256) + 0.5) / 256)
    return np.clip(np.round(sigma * quantiles), -128, 127).astype(np.int8)


def random_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8: a two-colour gradient with a few random shapes and sensor noise (sigma 4 levels)."""
    start, end = rng.uniform(0, 255, (2, 3))
    angle = rng.uniform(0, np.pi)
    side = max(height, width)
    xs = np.arange(width, dtype=np.float32) * np.float32(np.cos(angle) / side)
    ys = np.arange(height, dtype=np.float32) * np.float32(np.sin(angle) / side)
    t = ys[:, None] + xs[None, :]  # (H, W) position along the gradient, 0..~1.4
    image = cv2.merge([cv2.convertScaleAbs(t, alpha=float(e - s), beta=float(s)) for s, e in zip(start, end)])
    for _ in range(rng.integers(2, 7)):
        colour = tuple(int(c) for c in rng.uniform(0, 255, 3))
        if rng.random() < 0.5:
            x0, y0 = rng.integers(0, width), rng.integers(0, height)
            x1, y1 = x0 + rng.integers(10, width // 2), y0 + rng.integers(10, height // 2)
            cv2.rectangle(image, (int(x0), int(y0)), (int(x1), int(y1)), colour, -1)
        else:
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(image, centre, int(rng.integers(5, width // 4)), colour, -1)
    uniform = np.frombuffer(rng.bytes(height * width * 3), np.uint8).reshape(height, width * 3)
    noise = cv2.LUT(uniform, _gaussian_table(4.0))
    return cv2.add(image.reshape(height, width * 3), noise, dtype=cv2.CV_8U).reshape(height, width, 3)


def sample_smpl(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(count, 72) camera-frame axis-angle poses, (count, 10) betas and each pose's template name."""
    euler, templates = sample_body_poses(rng, count)
    pose = euler_to_axis_angle(euler)
    pose[:, 0] = camera_frame_global_orient(rng, count)
    betas = np.clip(rng.normal(0, 1, (count, 10)), -2.5, 2.5)
    return pose.reshape(count, 72), betas, templates


def xy_box(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, N, 2+) points -> their x/y bounding boxes: low (B, 2), high (B, 2).

    Reduces contiguous per-axis rows: numpy's min over the middle axis of (B, N, 2) is ~10x slower.
    """
    xy = np.ascontiguousarray(np.moveaxis(points[..., :2], -1, 1))  # (B, 2, N)
    return xy.min(axis=2), xy.max(axis=2)


def place_in_image(
    rng: np.random.Generator, vertices: np.ndarray, joints: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Chooses each body's image position and size; returns focal lengths (B,) px and translations (B, 3) m.

    The body's extent (largest side of its x/y bounding box, metres) is drawn at 55-90 % of the image side,
    its pelvis within the middle fifth; the focal length follows the paper's crop camera (5000 px for a
    224 px crop) so that the crop camera fitted later from the annotations matches.
    """
    count = len(vertices)
    low, high = xy_box(vertices)
    extent = np.max(high - low, axis=1)
    pixels = rng.uniform(0.55, 0.9, count) * size
    crop_side = pixels * BOX_PADDING
    focal = crop_focal(crop_side)
    depth = focal * extent / pixels
    target = size / 2 + rng.uniform(-0.1, 0.1, (count, 2)) * size
    centre = 0.5 * (low + high)
    offset_xy = (target - size / 2) * depth[:, None] / focal[:, None] - centre
    del joints  # placement uses the mesh's box, so limbs never leave the frame
    return focal, np.concatenate([offset_xy, depth[:, None]], axis=1)


def project(points: np.ndarray, focal: np.ndarray, translation: np.ndarray, size: int) -> np.ndarray:
    """(B, N, 3) body-frame points -> (B, N, 2) pixels of a size x size image, principal point at its centre.

    Annotations use the pipeline's pixel convention (OpenCV's: integer coordinates are pixel centres, so the
    centre is (size - 1) / 2); the rasterizer's screen space puts pixel centres at +0.5 (centre size / 2).
    """
    cam = points + translation[:, None]
    return cam[..., :2] / cam[..., 2:3] * focal[:, None, None] + pixel_centre(size)


def rest_face_centres(body: BodyModel, parts: DenseParts) -> np.ndarray:
    """(F, 3) centres of the render faces of `parts` on `body` at zero pose and shape, metres."""
    with torch.no_grad():
        rest = body(betas=torch.zeros(1, NUM_BETAS), pose=torch.zeros(1, 72)).vertices[0].double().numpy()
    return rest[parts.render_to_body][parts.faces].mean(axis=1)


def rest_regions(body: BodyModel, parts: DenseParts) -> dict[str, np.ndarray]:
    """front_back_regions of `body` rendered with `parts`."""
    return front_back_regions(rest_face_centres(body, parts), parts.face_part)


def render_scene_batch(
    body: BodyModel,
    parts: DenseParts,
    seed: int,
    count: int,
    size: int = 256,
    backend: str = "auto",
    smooth_shading: bool = False,
) -> SceneBatch:
    """Renders `count` synthetic people into size x size images with SPIN-style annotations (see module doc).

    smooth_shading interpolates vertex normals; flat (per-face) shading is ~2x faster and the default.
    """
    rng = np.random.default_rng(seed)
    pose, betas, templates = sample_smpl(rng, count)
    with torch.no_grad():
        out = body(
            betas=torch.as_tensor(betas, dtype=torch.float32), pose=torch.as_tensor(pose, dtype=torch.float32)
        )
    vertices = out.vertices.double().numpy()
    keypoints = body.regress(out.vertices, "spin24").double().numpy()
    focal, translation = place_in_image(rng, vertices, out.joints.numpy(), size)

    eye = np.tile(np.eye(3), (count, 1, 1))
    intrinsics = eye.copy()
    intrinsics[:, 0, 0] = intrinsics[:, 1, 1] = focal
    intrinsics[:, :2, 2] = screen_centre(size)
    camera = PerspectiveCamera(
        K=torch.as_tensor(intrinsics, dtype=torch.float32),
        R=torch.as_tensor(eye, dtype=torch.float32),
        t=torch.as_tensor(translation, dtype=torch.float32),
    )
    face_colours = clothing_colours(rng, count)[:, parts.face_part]
    face_colours = add_front_back_cues(rng, face_colours, rest_regions(body, parts))
    backgrounds = np.stack([random_background(rng, size, size) for _ in range(count)])
    light = rng.normal(size=3) * [0.6, 0.6, 0.3] + [0.0, -0.3, -1.0]
    render_vertices = torch.as_tensor(vertices[:, parts.render_to_body], dtype=torch.float32)
    images = render_shaded(
        render_vertices,
        torch.as_tensor(parts.faces),
        camera,
        size,
        size,
        backend=backend,
        face_colors=torch.as_tensor(face_colours, dtype=torch.float32),
        background=torch.as_tensor(backgrounds),
        light_direction=tuple(float(x) for x in light),
        ambient=float(rng.uniform(0.25, 0.5)),
        smooth=smooth_shading,
    ).numpy()

    kp2d = project(keypoints, focal, translation, size)
    inside = np.all((kp2d >= 0) & (kp2d < size), axis=-1)
    mesh2d = project(vertices, focal, translation, size)
    low, high = xy_box(mesh2d)
    kp3d = keypoints + translation[:, None]
    annotations = {
        "center": (0.5 * (low + high)).astype(np.float64),
        "scale": (BOX_PADDING * np.max(high - low, axis=1) / BBOX_UNIT).astype(np.float64),
        "part": np.concatenate([kp2d, inside[..., None]], axis=-1).astype(np.float64),
        "S": np.concatenate([kp3d, np.ones((count, 24, 1))], axis=-1).astype(np.float64),
        "pose": pose.astype(np.float32),
        "shape": betas.astype(np.float32),
        "has_smpl": np.ones(count, dtype=np.float64),
        "focal_length": focal.astype(np.float64),
        "cam_t": translation.astype(np.float64),
    }
    return SceneBatch(images=images, annotations=annotations, templates=templates)
