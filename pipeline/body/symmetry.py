"""Left/right symmetry of a body mesh: which vertex mirrors which under x -> -x (SMPL axes, x = body's left)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def vertex_mirror_map(v_template: np.ndarray, max_error: float = 5e-3) -> np.ndarray:
    """(V, 3) rest vertices in metres -> (V,) int64 index of each vertex's mirror image.

    The mirror of vertex i is the vertex nearest to (-x_i, y_i, z_i). The map is made an involution by
    keeping, for every pair that disagrees, the assignment of the closer match; a template that is not
    left/right symmetric to within `max_error` metres raises ValueError.
    """
    vertices = np.asarray(v_template, dtype=np.float64)
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    distance, mirror = cKDTree(vertices).query(mirrored)
    if distance.max() > max_error:
        worst = int(distance.argmax())
        raise ValueError(
            f"template is not left/right symmetric: vertex {worst} has no mirror within {max_error} m "
            f"(nearest {distance[worst]:.4f} m)"
        )
    mirror = mirror.astype(np.int64)
    broken = np.nonzero(mirror[mirror] != np.arange(len(mirror)))[0]
    for i in broken[np.argsort(distance[broken])]:
        j = mirror[i]
        mirror[j] = i
    return mirror
