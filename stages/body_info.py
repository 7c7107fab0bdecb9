"""Write the default body's mesh in a few poses as .obj files and print its facts.

python -m stages.body_info [--model anny-smpl24] [--out out/body]
python -m stages.body_info --identity data/body/NAME.json --model SMPL_DIR --dense-parts UV_Processed.mat \
    --extra-regressor J_regressor_extra.npy

--identity checks that the files make a renderable body (dense parts that fit it, SPIN's 24 keypoints) and
writes them with their sha256 (the DVC pipeline's render stages depend on that file, so changing a body file
re-renders, and an unchanged one keeps the shards).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from pipeline.body import BodyModelFileError, load_body_model, load_dense_parts
from pipeline.body.spec import BodySpec
from pipeline.files import atomic_write_text
from stages.cli import stage_parser

# A few recognisable poses as (joint, axis-angle in radians) lists on top of the T-pose.
DEMO_POSES: dict[str, list[tuple[int, tuple[float, float, float]]]] = {
    "t_pose": [],
    "a_pose": [(16, (0.0, 0.0, -0.8)), (17, (0.0, 0.0, 0.8))],
    "walking": [
        (1, (-0.5, 0.0, 0.0)),
        (2, (0.4, 0.0, 0.0)),
        (4, (0.6, 0.0, 0.0)),
        (5, (0.2, 0.0, 0.0)),
        (16, (0.0, 0.0, -1.2)),
        (17, (0.0, 0.0, 1.2)),
        (18, (0.0, -0.4, 0.0)),
        (19, (0.0, 0.4, 0.0)),
    ],  # fmt: skip
    "arms_raised": [
        (16, (0.0, 0.0, 1.0)),
        (17, (0.0, 0.0, -1.0)),
        (18, (0.0, 0.0, 0.3)),
        (19, (0.0, 0.0, -0.3)),
    ],
    "sitting": [(1, (-1.5, 0.0, 0.0)), (2, (-1.5, 0.0, 0.0)), (4, (1.5, 0.0, 0.0)), (5, (1.5, 0.0, 0.0))],
}


def demo_pose(entries: list[tuple[int, tuple[float, float, float]]]) -> torch.Tensor:
    """(72,) axis-angle pose with the given joints set."""
    pose = torch.zeros(24, 3)
    for joint, axis_angle in entries:
        pose[joint] = torch.tensor(axis_angle)
    return pose.reshape(72)


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Writes a triangle mesh as Wavefront .obj (1-based faces), via a temporary file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.writelines(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in vertices)
        handle.writelines(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces)
    tmp.replace(path)


def write_identity(path: Path, spec: BodySpec) -> int:
    """Checks the spec renders and writes its identity (files + sha256) as JSON; exit code."""
    try:
        spec.check_renderable()
        identity = spec.identity()
    except BodyModelFileError as err:
        print(f"body_info: {err}", file=sys.stderr)
        return 1
    atomic_write_text(path, json.dumps(identity, indent=2, sort_keys=True) + "\n")
    print(f"body_info: wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("body_info", __doc__)
    parser.add_argument(
        "--model", "--body-model", default="anny-smpl24", help="built-in name, SMPL .pkl/.npz file or folder"
    )
    parser.add_argument("--gender", default="neutral", help="gender when --model is an SMPL folder")
    parser.add_argument("--out", type=Path, default=Path("out/body"), help="folder for the .obj files")
    parser.add_argument(
        "--identity", type=Path, default=None, help="write the body files' identity JSON here"
    )
    parser.add_argument("--dense-parts", default="", help="UV_Processed.mat ('' = the model's own parts)")
    parser.add_argument("--extra-regressor", default="", help="SPIN's J_regressor_extra.npy ('' = none)")
    args = parser.parse_args(argv)
    if args.identity is not None:
        return write_identity(args.identity, BodySpec(args.model, args.dense_parts, args.extra_regressor))

    body = load_body_model(args.model, gender=args.gender)
    args.out.mkdir(parents=True, exist_ok=True)
    poses = torch.stack([demo_pose(entries) for entries in DEMO_POSES.values()])
    with torch.no_grad():
        out = body(pose=poses)
    faces = body.faces.numpy()
    for name, vertices in zip(DEMO_POSES, out.vertices.numpy()):
        write_obj(args.out / f"{name}.obj", vertices, faces)
    rest = out.vertices[0]
    facts = {
        "model": body.name,
        "vertices": body.num_vertices,
        "faces": int(faces.shape[0]),
        "joints": 24,
        "betas": body.num_betas,
        "height_m": round(float(rest[:, 1].max() - rest[:, 1].min()), 4),
        "regressors": body.regressor_names,
        "obj_files": sorted(str(p) for p in args.out.glob("*.obj")),
    }
    try:
        parts = load_dense_parts(args.model)
        facts["render_vertices"] = parts.num_render_vertices
        facts["faces_per_part"] = np.bincount(parts.face_part, minlength=25)[1:].tolist()
    except Exception as err:  # noqa: BLE001 - real SMPL needs UV_Processed.mat, which is optional here
        facts["dense_parts"] = f"unavailable ({err})"
    print(json.dumps(facts, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
