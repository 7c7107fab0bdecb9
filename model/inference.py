"""Running a trained DaNet on whole photographs: person boxes -> crops -> predictions -> full-image outputs.

Pixel convention (as in :mod:`pipeline.crop`): integer coordinates are pixel centres, x right, y down. The
rasterizer's screen space puts pixel centres at integer + 0.5; :func:`render_overlay` adds that half pixel.
Camera frame: OpenCV (x right, y down, z forward), metres.

Crops follow the training data exactly. A person box ``[x, y, w, h]`` (full-image pixels, COCO layout) is
padded the way the datasets pad theirs (side = ``BOX_PADDING * max(w, h)``, SPIN's ``scale = side / 200``,
centre = box centre, as pipeline/datasets/coco.py and pipeline/synth/scene.py do); the loader's evaluation
path (pipeline/augment.py with ``AugmentConfig(enabled=False)``) then maps the padded box onto the whole
224-pixel network crop, so the network input here is ``crop_transform(center, scale, 224)`` of the image.
A whole image without a box is taken as an already-cropped person: centre = image centre, side = the longer
image side (SPIN's demo convention), no extra padding.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from model.iuv import iuv_image
from model.rotations import matrix_to_axis_angle
from model.training.targets import LOADER_CROP, normalise_images
from pipeline.body import load_dense_parts
from pipeline.body.parts import DenseParts
from pipeline.conventions import (
    BBOX_UNIT,
    BOX_PADDING,
    REFERENCE_FOCAL,
    SCREEN_OFFSET,
    pixel_centre,
    weak_perspective_translation,
)
from pipeline.crop import crop_transform, warp
from pipeline.files import atomic_write_bytes
from pipeline.render.annotate import draw_box, iuv_picture, part_colours_u8, row_label
from pipeline.render.camera_fit import fit_translation
from pipeline.render.cameras import PerspectiveCamera, WeakPerspectiveCamera
from pipeline.render.iuv import encode_iuv
from pipeline.render.shade import render_shaded
from pipeline.shards import encode_png

OVERLAY_ALPHA = 0.65  # weight of the shaded mesh in the overlay
MESH_COLOUR = (0.65, 0.75, 0.95)  # light blue albedo of the overlay mesh


# ---------------------------------------------------------------------------------------------------------
# boxes and crops


@dataclass(frozen=True)
class PersonBox:
    """One person to predict: SPIN-style ``center`` (x, y) image pixels and ``scale`` (padded side / 200),
    plus the box it came from (``[x, y, w, h]`` image pixels, or None for a whole image)."""

    center: tuple[float, float]
    scale: float
    bbox: tuple[float, float, float, float] | None = None

    @property
    def side(self) -> float:
        """Side of the square crop window in image pixels."""
        return BBOX_UNIT * self.scale


def validate_bbox(values, where: str) -> tuple[float, float, float, float]:
    """``[x, y, w, h]`` as four finite floats with w, h > 0; ValueError naming ``where`` otherwise."""
    try:
        box = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: bbox must be four numbers x,y,w,h, got {values!r}") from None
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise ValueError(f"{where}: bbox must be four finite numbers x,y,w,h, got {values!r}")
    if box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"{where}: bbox width and height must be positive, got {values!r}")
    return box  # type: ignore[return-value]


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``"x,y,w,h"`` (image pixels) -> four floats; ValueError with the offending text otherwise."""
    return validate_bbox(text.split(","), f"--bbox {text!r}")


def box_outside_image(bbox: tuple[float, float, float, float], height: int, width: int) -> str | None:
    """Why the ``[x, y, w, h]`` box (pixel centres at integers) cannot be a person of a (height, width)
    image: it lies entirely outside it; None when it overlaps the image."""
    x, y, w, h = bbox
    if x + w < -0.5 or y + h < -0.5 or x > width - 0.5 or y > height - 0.5:
        return f"box [{x:g}, {y:g}, {w:g}, {h:g}] lies entirely outside the {width}x{height} image"
    return None


def box_from_xywh(bbox: tuple[float, float, float, float], padding: float = BOX_PADDING) -> PersonBox:
    """COCO box ``[x, y, w, h]`` (pixels) -> PersonBox: centre of the box, scale = padding * max(w, h) / 200."""
    x, y, w, h = bbox
    return PersonBox((x + w / 2.0, y + h / 2.0), padding * max(w, h) / BBOX_UNIT, tuple(bbox))


def whole_image_box(height: int, width: int) -> PersonBox:
    """The whole (height, width) image as the crop window: centred, side = the longer image side."""
    return PersonBox((pixel_centre(width), pixel_centre(height)), max(height, width) / BBOX_UNIT, None)


def crop_person(image: np.ndarray, box: PersonBox, size: int = LOADER_CROP) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB image -> ((size, size, 3) uint8 crop, (2, 3) image-to-crop affine); outside is black."""
    matrix = crop_transform(np.asarray(box.center), box.scale, size)
    return warp(image, matrix, size), matrix


# ---------------------------------------------------------------------------------------------------------
# the network


@torch.no_grad()
def predict_crops(network, crops: np.ndarray, device: torch.device | str) -> dict[str, np.ndarray]:
    """Run the network on (B, S, S, 3) uint8 RGB crops (S = 224, the loader's crop) and return numpy arrays:

    ``vertices`` (B, V, 3) metres (body frame, camera axes), ``cam`` (B, 3) weak-perspective (s, tx, ty) of
    the 224 crop, ``rotmats`` (B, 24, 3, 3), ``pose`` (B, 72) axis-angle radians, ``betas`` (B, 10),
    ``iuv`` (B, h, w, 3) uint8 IUV codes at the network's map size (I = part 0..24, U, V = 0..255).
    """
    images = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).to(device)
    out = network(normalise_images(images, network.cfg.image_size))
    iuv = encode_iuv(iuv_image(out["index_logits"], out["u"], out["v"]))
    return {
        "vertices": out["vertices"].double().cpu().numpy(),
        "cam": out["cam"].double().cpu().numpy(),
        "rotmats": out["rotmats"].double().cpu().numpy(),
        "pose": matrix_to_axis_angle(out["rotmats"].double()).reshape(len(crops), -1).cpu().numpy(),
        "betas": out["betas"].double().cpu().numpy(),
        "iuv": iuv.cpu().numpy(),
    }


# ---------------------------------------------------------------------------------------------------------
# cameras


def crop_translation(
    cam: np.ndarray, focal: float = REFERENCE_FOCAL, size: float = LOADER_CROP
) -> np.ndarray:
    """(B, 3) weak-perspective (s, tx, ty) -> (B, 3) crop-camera translation [tx, ty, 2 f / (size s)], metres."""
    return weak_perspective_translation(np.asarray(cam, dtype=np.float64), focal, size)


def pinhole(points: np.ndarray, focal, principal, translation: np.ndarray) -> np.ndarray:
    """(B, N, 3) body points (metres) -> (B, N, 2) pixels (centres at integers) of the camera with focal
    (B,) or scalar pixels, principal point (B, 2) or (2,) pixels, translation (B, 3) metres, no rotation."""
    p = np.asarray(points, dtype=np.float64) + np.asarray(translation, dtype=np.float64)[:, None]
    focal = np.broadcast_to(np.asarray(focal, dtype=np.float64), (p.shape[0],))
    principal = np.broadcast_to(np.asarray(principal, dtype=np.float64), (p.shape[0], 2))
    return p[..., :2] / p[..., 2:3] * focal[:, None, None] + principal[:, None]


def crop_pixels(
    vertices: np.ndarray, cam: np.ndarray, focal: float = REFERENCE_FOCAL, size: float = LOADER_CROP
):
    """(B, N, 3) body points -> (B, N, 2) crop pixels through the crop camera (principal point (size-1)/2,
    the same projection as model.camera.project followed by the loader's pixel normalisation)."""
    return pinhole(vertices, focal, np.full(2, pixel_centre(size)), crop_translation(cam, focal, size))


def rotation_to(direction: np.ndarray) -> np.ndarray:
    """(B, 3) directions with positive z -> (B, 3, 3) the smallest rotations R with R @ [0, 0, 1] = direction
    / |direction| (Rodrigues' formula about the axis z x direction)."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    axis = np.stack([-d[:, 1], d[:, 0], np.zeros(len(d))], axis=-1)  # z x d, length sin(angle)
    skew = np.zeros((len(d), 3, 3))
    skew[:, 0, 2], skew[:, 1, 2] = axis[:, 1], -axis[:, 0]
    skew[:, 2, 0], skew[:, 2, 1] = -axis[:, 1], axis[:, 0]
    return np.eye(3) + skew + skew @ skew / (1.0 + d[:, 2])[:, None, None]


def full_image_camera(
    vertices: np.ndarray,
    cam: np.ndarray,
    matrices: np.ndarray,
    image_size: tuple[int, int],
    focal: float = REFERENCE_FOCAL,
    size: float = LOADER_CROP,
) -> dict[str, np.ndarray]:
    """The full image's pinhole camera (principal point at the image centre) equivalent to each crop's
    weak-perspective prediction, with the rigid motion that places the body in its frame.

    vertices (B, V, 3) body-frame metres, cam (B, 3) (s, tx, ty), matrices (B, 2, 3) image-to-crop affines
    ``q = k p + m`` (isotropic k = size / crop side), image_size (H, W). Returns ``focal`` (B,) pixels,
    ``principal`` (B, 2) pixels (image centre, pixel centres at integers), ``rotation`` (B, 3, 3) and
    ``translation`` (B, 3) metres such that the image-camera-frame vertices are ``R X + t``, and
    ``residual_px`` (B,), the largest distance over the vertices between the image camera's projection and
    the crop camera's projection mapped back to the image.

    Derivation. The crop camera maps a body point X to crop pixels ``q = f Y_xy / Y_z + c`` with Y = X + t0,
    f = 5000, c = (size - 1) / 2, t0 = [tx, ty, 2 f / (size s)]. The crop is the image window ``q = k p + m``,
    so the point lands on image pixel ``p = (q - m) / k = F Y_xy / Y_z + b``: a pinhole camera of focal
    ``F = f / k = 5000 * side / size`` (side = crop window in image pixels) whose principal point is the
    box centre ``b = (c - m) / k``. With the principal point moved to the image centre o instead, the
    same pixels need ``Y' = Y + [(b - o) / F] Y_z``: a shear by depth, which no rigid motion gives. A
    translation alone (``t'_xy = t0_xy + (b - o) t0_z / F``) is exact on the body's origin plane and off by
    ``|b - o| dz / t0_z`` pixels at depth offset dz (a couple of pixels for a box near the border of a large
    photograph). A rotation does better: turning the crop camera's optical axis onto the ray through b,
    ``R e_z = (b - o, F) / |(b - o, F)|``, maps the axis exactly onto b and differs from the shear only in
    second order of the small angle |b - o| / F; the translation ``t`` is then solved by least squares over
    all vertices (pipeline.render.camera_fit.fit_translation on the rotated body, ``R t0`` as the depth
    prior) so that the projections agree; ``residual_px`` reports what is left (well under a pixel).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    matrices = np.asarray(matrices, dtype=np.float64)
    height, width = image_size
    k = matrices[:, 0, 0]  # (B,) crop pixels per image pixel
    big_focal = focal / k
    box_principal = (pixel_centre(size) - matrices[:, :, 2]) / k[:, None]  # (B, 2) the exact camera's
    centre = np.array([pixel_centre(width), pixel_centre(height)])
    rotation = rotation_to(np.concatenate([box_principal - centre, big_focal[:, None]], axis=-1))
    rotated = np.einsum("bij,bvj->bvi", rotation, vertices)
    prior = np.einsum("bij,bj->bi", rotation, crop_translation(cam, focal, size))
    # the target: crop projections mapped back to the image through the inverse crop transform
    target = (crop_pixels(vertices, cam, focal, size) - matrices[:, None, :, 2]) / k[:, None, None]
    translation = fit_translation(
        rotated,
        target,
        np.ones(vertices.shape[:2]),
        big_focal,
        centre,
        prior_depth=prior[:, 2],
        prior_weight=1e-6,
    )
    residual = np.linalg.norm(pinhole(rotated, big_focal, centre, translation) - target, axis=-1).max(axis=1)
    return {
        "focal": big_focal,
        "principal": np.broadcast_to(centre, (len(k), 2)).copy(),
        "rotation": rotation,
        "translation": translation,
        "residual_px": residual,
    }


def to_image_frame(vertices: np.ndarray, camera: dict[str, np.ndarray]) -> np.ndarray:
    """(B, V, 3) body-frame vertices -> (B, V, 3) the full-image camera's frame, ``R X + t`` (metres)."""
    return np.einsum("bij,bvj->bvi", camera["rotation"], vertices) + camera["translation"][:, None]


# ---------------------------------------------------------------------------------------------------------
# writers


def obj_text(vertices: np.ndarray, faces: np.ndarray) -> str:
    """Wavefront OBJ text of one mesh: (V, 3) vertices (metres), (F, 3) 0-based faces (written 1-based)."""
    v = "\n".join(f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, dtype=np.float64))
    f = "\n".join(f"f {a} {b} {c}" for a, b, c in np.asarray(faces, dtype=np.int64) + 1)
    return f"# DaNet prediction, camera frame (x right, y down, z forward), metres\n{v}\n{f}\n"


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 RGB picture."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


@functools.lru_cache(maxsize=4)
def dense_parts_for(body_model: str) -> DenseParts | None:
    """The dense parts that colour a body model's mesh by DensePose part: the built-in model's own, or
    DANET_DENSE_PARTS (UV_Processed.mat) for real SMPL; None when neither is available (one colour then)."""
    try:
        return load_dense_parts(os.environ.get("DANET_DENSE_PARTS", body_model))
    except (OSError, ValueError, KeyError):
        return None


def _shade(
    vertices: np.ndarray, faces: torch.Tensor, parts: DenseParts | None, camera, height: int, width: int,
    background: np.ndarray, device: torch.device | str,
) -> np.ndarray:  # fmt: skip
    """(H, W, 3) uint8: the (V, 3) mesh shaded in part colours (one light blue without `parts`)."""
    verts = torch.as_tensor(vertices, dtype=torch.float32, device=device)[None]
    bg = torch.as_tensor(background, device=device)
    if parts is None:
        colours = torch.tensor(MESH_COLOUR, device=device).expand(verts.shape[1], 3)
        out = render_shaded(
            verts, faces.to(device), camera, height, width, background=bg, vertex_colors=colours
        )
    else:
        palette = torch.as_tensor(part_colours_u8() / 255.0, dtype=torch.float32, device=device)
        face_colours = palette[torch.as_tensor(parts.face_part, device=device).long()]
        out = render_shaded(
            verts[:, torch.as_tensor(parts.render_to_body, device=device).long()],
            torch.as_tensor(parts.faces, device=device).long(), camera, height, width,
            background=bg, face_colors=face_colours,
        )  # fmt: skip
    return out[0].cpu().numpy()


def render_overlay(
    image: np.ndarray,
    vertices: np.ndarray,
    faces: torch.Tensor,
    focal: float,
    principal: np.ndarray,
    device: torch.device | str = "cpu",
    parts: DenseParts | None = None,
    box: PersonBox | None = None,
) -> np.ndarray:
    """(H, W, 3) uint8 RGB image with the shaded (V, 3) mesh (camera-frame metres) seen by the pinhole camera
    (focal pixels, principal (2,) pixels with centres at integers) blended over it, coloured by DensePose
    part when `parts` is given, and the person's box (when it has one) drawn in green; other pixels are
    unchanged."""
    height, width = image.shape[:2]
    k = torch.eye(3, dtype=torch.float32)[None].clone()
    k[0, 0, 0] = k[0, 1, 1] = float(focal)
    k[0, :2, 2] = torch.as_tensor(np.asarray(principal, dtype=np.float64) + SCREEN_OFFSET)  # to screen
    camera = PerspectiveCamera(
        K=k.to(device), R=torch.eye(3, device=device)[None], t=torch.zeros(1, 3, device=device)
    )
    shaded = _shade(vertices, faces, parts, camera, height, width, image, device)
    out = cv2.addWeighted(image, 1.0 - OVERLAY_ALPHA, shaded, OVERLAY_ALPHA, 0.0)
    return draw_box(out, box.bbox) if box is not None and box.bbox is not None else out


def side_view(
    vertices: np.ndarray,
    faces: torch.Tensor,
    size: int,
    device: torch.device | str = "cpu",
    parts: DenseParts | None = None,
) -> np.ndarray:
    """(size, size, 3) uint8 RGB: the (V, 3) camera-frame mesh seen from its side (turned 90 degrees about the
    image's vertical axis, so the photo's camera is on the left looking right), orthographic, filling 90 %
    of the panel, labelled."""
    verts = np.asarray(vertices, dtype=np.float64)
    centred = verts - (verts.max(0) + verts.min(0)) / 2.0
    turned = np.stack([centred[:, 2], centred[:, 1], -centred[:, 0]], axis=-1)  # depth becomes x
    extent = max(float(np.ptp(turned[:, 0])), float(np.ptp(turned[:, 1])), 1e-3)
    camera = WeakPerspectiveCamera(torch.tensor([[1.8 / extent, 0.0, 0.0]], device=device), float(size))
    background = np.full((size, size, 3), 48, np.uint8)
    panel = _shade(turned, faces, parts, camera, size, size, background, device)
    return row_label(panel, "side view: camera on the left", max(10.0, size / 28))


def iuv_in_image(iuv: np.ndarray, matrix: np.ndarray, image_shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """The network's (m, m, 3) uint8 IUV codes of a crop mapped onto the full image through the crop's (2, 3)
    image-to-crop affine: (H, W) part numbers (the part whose bilinearly interpolated mask is largest, where
    the foreground's is over one half), (H, W) u and v in [0, 1] (bilinear); 0 outside the crop.

    Map pixel j covers crop pixels around q = (j + 0.5) * size / m - 0.5 (centres at integers), so image
    pixel p reads map coordinate ``s (A p + b) + (s - 1) / 2`` with s = m / size."""
    height, width = image_shape[:2]
    s = iuv.shape[0] / LOADER_CROP
    to_map = s * np.asarray(matrix, dtype=np.float64)
    to_map[:, 2] += 0.5 * s - 0.5
    flags = cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
    uv = cv2.warpAffine(iuv[..., 1:].astype(np.float32) / 255.0, to_map, (width, height), flags=flags)
    # parts: each part's mask interpolated bilinearly, the largest wins where the person's share is over
    # one half (smooth outlines instead of magnified map pixels)
    labels = [k for k in np.unique(iuv[..., 0]) if k > 0]
    if not labels:
        return np.zeros((height, width), np.int64), uv[..., 0], uv[..., 1]
    warp_mask = lambda mask: cv2.warpAffine(mask.astype(np.float32), to_map, (width, height), flags=flags)  # noqa: E731
    masks = np.stack([warp_mask(iuv[..., 0] == k) for k in labels])
    part = np.where(warp_mask(iuv[..., 0] > 0) > 0.5, np.asarray(labels)[np.argmax(masks, axis=0)], 0)
    return part.astype(np.int64), uv[..., 0], uv[..., 1]


def person_record(
    prediction: dict[str, np.ndarray], camera: dict[str, np.ndarray], index: int, box: PersonBox, image: str
) -> dict:
    """The .json record of person ``index`` of a batch: parameters, crop and full-image cameras, the box."""
    i = index
    root = torch.as_tensor(camera["rotation"][i] @ prediction["rotmats"][i, 0])
    return {
        "image": image,
        "bbox": list(box.bbox) if box.bbox is not None else None,
        "crop": {"center": list(box.center), "scale": box.scale, "side_px": box.side, "size": LOADER_CROP},
        "pose": prediction["pose"][i].tolist(),
        "betas": prediction["betas"][i].tolist(),
        "crop_camera": {
            "weak_perspective": prediction["cam"][i].tolist(),
            "focal": REFERENCE_FOCAL,
            "principal": [pixel_centre(LOADER_CROP)] * 2,
            "translation": crop_translation(prediction["cam"][i : i + 1])[0].tolist(),
        },
        "camera": {
            "focal": float(camera["focal"][i]),
            "principal": camera["principal"][i].tolist(),
            "rotation": camera["rotation"][i].tolist(),
            "translation": camera["translation"][i].tolist(),
            "residual_px": float(camera["residual_px"][i]),
        },
        "global_orient_image": matrix_to_axis_angle(root).tolist(),
        "conventions": "pose: 24 x axis-angle (radians), SMPL joint order, global orientation in the crop "
        "camera's frame (global_orient_image: in the image camera's); mesh.obj = rotation @ X + translation "
        "for body-frame vertices X; cameras: x right, y down, z forward, metres; pixels: centres at integers",
    }


def write_person(
    out_dir: Path,
    stem: str,
    image: np.ndarray,
    prediction: dict[str, np.ndarray],
    camera: dict[str, np.ndarray],
    index: int,
    box: PersonBox,
    faces: torch.Tensor,
    image_name: str,
    device: torch.device | str = "cpu",
    extra: dict | None = None,
    parts: DenseParts | None = None,
) -> list[Path]:
    """Write person ``stem`` (e.g. ``person0``) of a batch into ``out_dir``: ``_mesh.obj`` (image camera
    frame), ``_params.json`` (plus the entries of ``extra``), ``_iuv.png`` (raw codes, map size),
    ``_iuv_vis.png`` (the same for people: part colours and U/V iso-lines over the photo, image size),
    ``_overlay.png`` (box and mesh, in part colours when ``parts`` is given, over the photo, image size) and
    ``_side.png`` (the mesh from its side, image height square); returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    one = {key: value[index : index + 1] for key, value in camera.items()}
    vertices = to_image_frame(prediction["vertices"][index : index + 1], one)[0]
    names = ("mesh.obj", "params.json", "iuv.png", "iuv_vis.png", "overlay.png", "side.png")
    paths = {name: out_dir / f"{stem}_{name}" for name in names}
    atomic_write_bytes(paths["mesh.obj"], obj_text(vertices, faces.cpu().numpy()).encode())
    record = {**person_record(prediction, camera, index, box, image_name), **(extra or {})}
    atomic_write_bytes(paths["params.json"], (json.dumps(record, indent=1) + "\n").encode())
    atomic_write_bytes(paths["iuv.png"], encode_png(prediction["iuv"][index]))
    matrix = crop_transform(np.asarray(box.center), box.scale, LOADER_CROP)
    picture = iuv_picture(*iuv_in_image(prediction["iuv"][index], matrix, image.shape), background=image)
    atomic_write_bytes(paths["iuv_vis.png"], png_bytes(picture))
    overlay = render_overlay(
        image, vertices, faces, camera["focal"][index], camera["principal"][index], device, parts, box
    )
    atomic_write_bytes(paths["overlay.png"], png_bytes(overlay))
    side = side_view(vertices, faces, image.shape[0], device, parts)
    atomic_write_bytes(paths["side.png"], png_bytes(side))
    return list(paths.values())


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an image file; ValueError saying why when it cannot be read."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise ValueError(f"cannot read file ({err.strerror or err})") from None
    if data.size == 0:
        raise ValueError("empty file")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable image (OpenCV could not decode it)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------------------------------------
# box files


def load_boxes(path: Path) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Person boxes from a JSON file as (image reference, [x, y, w, h]) pairs, in file order.

    Accepted: a list of ``{"image": name or path, "bbox": [x, y, w, h]}``; a COCO-style object
    ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "bbox"}]}`` (annotations with a
    ``category_id`` other than 1 (person) or ``iscrowd`` set are left out); or an object with both a
    ``"boxes"`` list of the first kind and COCO keys. ValueError naming the file and the entry otherwise.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from None
    pairs: list[tuple[str, tuple[float, float, float, float]]] = []
    plain = data if isinstance(data, list) else data.get("boxes", []) if isinstance(data, dict) else None
    if plain is None or not isinstance(plain, list):
        raise ValueError(
            f"{path}: expected a list of {{image, bbox}} or a COCO object with images/annotations"
        )
    for i, entry in enumerate(plain):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict) or "image" not in entry or "bbox" not in entry:
            raise ValueError(f"{where}: needs 'image' and 'bbox' keys, got {entry!r}")
        pairs.append((str(entry["image"]), validate_bbox(entry["bbox"], where)))
    if isinstance(data, dict) and ("images" in data or "annotations" in data):
        names = {}
        for i, im in enumerate(data.get("images", [])):
            if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
                raise ValueError(f"{path}: images[{i}] needs 'id' and 'file_name'")
            names[im["id"]] = str(im["file_name"])
        for i, ann in enumerate(data.get("annotations", [])):
            where = f"{path}: annotations[{i}]"
            if not isinstance(ann, dict) or "image_id" not in ann or "bbox" not in ann:
                raise ValueError(f"{where}: needs 'image_id' and 'bbox'")
            if ann.get("category_id", 1) != 1 or ann.get("iscrowd", 0):
                continue
            if ann["image_id"] not in names:
                raise ValueError(f"{where}: image_id {ann['image_id']!r} is not in 'images'")
            pairs.append((names[ann["image_id"]], validate_bbox(ann["bbox"], where)))
    return pairs


def match_boxes(
    images: list[Path], pairs: list[tuple[str, tuple[float, float, float, float]]], base: Path
) -> tuple[dict[Path, list[tuple[float, float, float, float]]], list[str]]:
    """Assign box-file entries to input images: an entry matches an image when its reference, taken relative
    to ``base`` (the box file's folder) or as given, is the same file, or else when it equals the image's file
    name. Returns {image: boxes in file order} and the references that matched no input image."""
    by_file = {p.resolve(): p for p in images}
    by_name: dict[str, list[Path]] = {}
    for p in images:
        by_name.setdefault(p.name, []).append(p)
    found: dict[Path, list[tuple[float, float, float, float]]] = {}
    unmatched: list[str] = []
    for ref, box in pairs:
        hits = [by_file[q] for q in {(base / ref).resolve(), Path(ref).resolve()} if q in by_file]
        hits = hits[:1] or by_name.get(Path(ref).name, [])
        if not hits:
            unmatched.append(ref)
        for image in hits:
            found.setdefault(image, []).append(box)
    return found, unmatched
