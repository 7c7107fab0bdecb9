"""The three refinement graphs equal what SMPL's parent list implies, computed here independently."""

from __future__ import annotations

import torch

from model.config import RefineConfig
from model.refine import (
    AggregatedRefinement,
    GraphConv,
    ancestors_adjacency,
    neighbour_adjacency,
    parent_child_adjacency,
)
from pipeline.body.constants import SMPL_PARENTS


def path_to_root(i: int) -> list[int]:
    path = [i]
    while SMPL_PARENTS[path[-1]] >= 0:
        path.append(SMPL_PARENTS[path[-1]])
    return path


def tree_distance(i: int, j: int) -> int:
    """Number of edges between i and j via their lowest common ancestor."""
    pi, pj = path_to_root(i), path_to_root(j)
    common = next(a for a in pi if a in pj)
    return pi.index(common) + pj.index(common)


def test_rotation_to_position_graph_is_self_and_ancestors():
    a = ancestors_adjacency()
    for i in range(24):
        assert {j for j in range(24) if a[i, j]} == set(path_to_root(i))
    assert a[0].sum() == 1  # the root only sees itself
    # left hand: itself, wrist, elbow, shoulder, collar, spine3, spine2, spine1, pelvis
    assert a[22].tolist() == [1.0 if j in (0, 3, 6, 9, 13, 16, 18, 20, 22) else 0.0 for j in range(24)]


def test_refinement_graph_is_one_and_two_hop_neighbours():
    a = neighbour_adjacency()
    for i in range(24):
        for j in range(24):
            assert bool(a[i, j]) == (1 <= tree_distance(i, j) <= 2)


def test_position_to_rotation_graph_is_parent_children_self():
    a = parent_child_adjacency()
    for i in range(24):
        expected = {i} | {j for j in range(24) if SMPL_PARENTS[j] == i or SMPL_PARENTS[i] == j}
        assert {j for j in range(24) if a[i, j]} == expected


def test_learnable_edges_stay_on_the_neighbour_support_and_rows_sum_to_one():
    support = neighbour_adjacency() + torch.eye(24)
    conv = GraphConv(support, 4, 4, learnable_mask=True)
    with torch.no_grad():
        conv.edges.copy_(torch.randn(24, 24) * 3)
    m = conv.matrix()
    assert torch.allclose(m.sum(1), torch.ones(24))
    assert torch.all(m[support == 0] == 0) and torch.all(m.diagonal() > 0)


def test_variants_build_the_stages_they_name():
    x = torch.randn(3, 24, 16)
    outs = {v: AggregatedRefinement(RefineConfig(variant=v, hidden=(8,)), 16, 6)(x) for v in
            ("none", "direct", "position_implicit", "position_aided")}  # fmt: skip
    assert [len(o["rotations"]) for o in outs.values()] == [1, 2, 2, 2]
    assert [len(o["positions"]) for o in outs.values()] == [0, 0, 0, 2]
    fixed = AggregatedRefinement(RefineConfig(learnable_edges=False, hidden=(8,)), 16, 6)
    assert all(layer.edges is None for layer in fixed.refine.layers)
