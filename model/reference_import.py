"""Convert the authors' DaNet checkpoint (HongwenZhang/DaNet-3DHumanReconstruction) to and from ours.

Their layout is listed in model.reference_keys; ours is DaNet(paper_config()). Each RULE pairs a key pattern
of theirs with one of ours and says how the tensor changes:
  copy        same tensor (backbones, heads, BatchNorms, grouped convs whose shapes already agree)
  transpose   their GraphConv weight is (in, out), our nn.Linear weight (out, in)
  per_joint   their 1x1 conv with groups 24, weight (24 n, C, 1, 1) / bias (24 n), is our PerJointLinear
              (24, C, n) / (24, n)
  per_joint6d the same for the rotation heads, with the 6D numbers reordered: theirs are a 3x2 block
              row-major (a1x a2x a1y a2y a1z a2z), ours the two columns one after the other (a1 then a2)
  relu        RoI alpha / delta: they apply ReLU to learned_ratio / learned_offset, we store the result
  squeeze     their (1, 24, 24) edge mask is our (24, 24)
  pose6d      their mean pose (1, 144) is our mean_rotation (24, 6), reordered like per_joint6d
mean_cam_shape (1, 13) splits into our mean_cam (3) and mean_betas (10). Their modules the "gcn" strategy
never runs (rot2pos, pos2rot), the SMPL body (iuv2smpl.smpl.*) and the graph buffers (rebuilt by our modules;
checked against ours) are dropped by name. Any other key of theirs, or any of ours left unfilled, is an error
listing the keys; a shape that does not fit is an error naming the first such key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from model.reference_keys import JOINTS, ReferenceDims, reference_keys
from model.refine import (
    ancestors_adjacency,
    normalize_rows,
    normalize_symmetric,
    parent_child_adjacency,
    refinement_adjacency,
    skeleton_adjacency,
)

SP = "iuv2smpl.smpl_para_Outs."
EST = "img2iuv.iuv_est."
# ours[k] = theirs[ROT6D_FROM_REFERENCE[k]] for the 6 numbers of a joint's rotation
ROT6D_FROM_REFERENCE = (0, 2, 4, 1, 3, 5)
ROT6D_TO_REFERENCE = tuple(ROT6D_FROM_REFERENCE.index(m) for m in range(6))


class ReferenceKeyError(KeyError):
    """The checkpoint's keys or shapes do not fit the authors' layout or our paper preset."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Rule:
    """`theirs` and `ours` are key templates; {i} matches an index, {rest} the remainder of the key."""

    theirs: str
    ours: str
    kind: str = "copy"

    def pattern(self, side: str) -> re.Pattern[str]:
        template = re.escape(getattr(self, side))
        template = template.replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{rest\}", r"(?P<rest>.+)")
        return re.compile(f"^{template}$")

    def fill(self, side: str, match: re.Match[str]) -> str:
        return getattr(self, side).format(**match.groupdict())


RULES: tuple[Rule, ...] = (
    Rule("img2iuv.learned_ratio", "roi.alpha", "relu"),
    Rule("img2iuv.learned_offset", "roi.delta", "relu"),
    Rule(EST + "final_pred.predict_uv_index.{rest}", "iuv.heads.index.{rest}"),
    Rule(EST + "final_pred.predict_u.{rest}", "iuv.heads.u.{rest}"),
    Rule(EST + "final_pred.predict_v.{rest}", "iuv.heads.v.{rest}"),
    Rule(EST + "final_pred.predict_ann_index.{rest}", "iuv.heads.coarse.{rest}"),
    Rule(EST + "final_pred.predict_hm.{rest}", "iuv.heads.heatmaps.{rest}"),
    Rule(EST + "final_pred.predict_partial_iuv.{rest}", "partial_heads.conv.{rest}"),
    Rule(EST + "{rest}", "iuv.backbone.{rest}"),
    Rule(SP + "mean_pose", "mean_rotation", "pose6d"),
    Rule(SP + "body_net.0.{rest}", "global_stream.stem.0.{rest}"),
    Rule(SP + "body_net.1.{rest}", "global_stream.stem.1.{rest}"),
    Rule(SP + "body_net.3.final_layer.{rest}", "global_stream.resnet.fc.{rest}"),
    Rule(SP + "body_net.3.{rest}", "global_stream.resnet.{rest}"),
    Rule(SP + "limb_net.0.{rest}", "local_streams.stem.0.{rest}"),
    Rule(SP + "limb_net.1.{rest}", "local_streams.stem.1.{rest}"),
    Rule(SP + "limb_net.3.{rest}", "local_streams.resnet.{rest}"),
    Rule(SP + "limb_reslayer.layer4.{rest}", "local_streams.layer4.{rest}"),
    Rule(SP + "coord_regressors.{i}.1.{rest}", "refine.pos_heads.{i}.{rest}", "per_joint"),
    Rule(SP + "pose_regressors.{i}.1.{rest}", "refine.rot_heads.{i}.{rest}", "per_joint6d"),
    Rule(SP + "edge_importance", "refine.refine.edges", "squeeze"),
    Rule(SP + "refine_gcn.gc.{i}.{rest}", "refine.refine.layers.{i}.linear.{rest}", "transpose"),
    Rule(SP + "refine_gcn.act.{i}.0.{rest}", "refine.refine.layers.{i}.bn.{rest}"),
    Rule(SP + "r2p_gcn.gc.0.{rest}", "refine.rot_to_pos.linear.{rest}", "transpose"),
    Rule(SP + "r2p_gcn.act.0.0.{rest}", "refine.rot_to_pos.bn.{rest}"),
    Rule(SP + "p2r_gcn.gc.0.{rest}", "refine.pos_to_rot.linear.{rest}", "transpose"),
    Rule(SP + "p2r_gcn.act.0.0.{rest}", "refine.pos_to_rot.bn.{rest}"),
)
CAM_SHAPE = SP + "mean_cam_shape"
# Theirs, dropped by name: modules the "gcn" strategy builds but never runs, and the SMPL body.
DROPPED_PREFIXES = (SP + "rot2pos.", SP + "pos2rot.", "iuv2smpl.smpl.")
# Theirs, dropped after a check: graph buffers our modules rebuild from the skeleton.
GRAPH_BUFFERS = tuple(SP + n for n in ("I_n", "A_link", "A", "A_mask", "r2p_A", "p2r_A"))


def reference_graphs() -> dict[str, torch.Tensor]:
    """The authors' six graph buffers (1, 24, 24) as our paper preset's modules build them."""
    eye = torch.eye(JOINTS)
    refine = refinement_adjacency(neck_shoulder=True)  # with self loops
    graphs = {
        "I_n": eye,
        "A_link": skeleton_adjacency(),
        "A": normalize_symmetric(refine),
        "A_mask": refine - eye,
        "r2p_A": normalize_rows(ancestors_adjacency() - eye),
        "p2r_A": normalize_rows(parent_child_adjacency()),
    }
    return {SP + k: v[None] for k, v in graphs.items()}


def _per_joint_to_ours(t: torch.Tensor, leaf: str, order: Iterable[int] | None) -> torch.Tensor:
    n = t.shape[0] // JOINTS
    if leaf == "weight":  # (24 n, C, 1, 1) -> (24, C, n)
        t = t.reshape(JOINTS, n, -1)
        t = t[:, list(order)] if order is not None else t
        return t.transpose(1, 2).contiguous()
    t = t.reshape(JOINTS, n)  # bias (24 n) -> (24, n)
    return (t[:, list(order)] if order is not None else t).contiguous()


def _per_joint_to_theirs(t: torch.Tensor, leaf: str, order: Iterable[int] | None) -> torch.Tensor:
    if leaf == "weight":  # (24, C, n) -> (24 n, C, 1, 1)
        t = t.transpose(1, 2)
        t = t[:, list(order)] if order is not None else t
        return t.reshape(-1, t.shape[-1], 1, 1).contiguous()
    t = t[:, list(order)] if order is not None else t
    return t.reshape(-1).contiguous()


def _to_ours(kind: str, t: torch.Tensor, leaf: str) -> torch.Tensor:
    if kind == "copy":
        return t
    if kind == "transpose":
        return t.t().contiguous() if leaf == "weight" else t
    if kind == "per_joint":
        return _per_joint_to_ours(t, leaf, None)
    if kind == "per_joint6d":
        return _per_joint_to_ours(t, leaf, ROT6D_FROM_REFERENCE)
    if kind == "relu":
        return torch.relu(t)
    if kind == "squeeze":
        return t.reshape(t.shape[-2], t.shape[-1])
    if kind == "pose6d":
        return t.reshape(JOINTS, 6)[:, list(ROT6D_FROM_REFERENCE)].contiguous()
    raise ValueError(kind)


def _to_theirs(kind: str, t: torch.Tensor, leaf: str) -> torch.Tensor:
    if kind in ("copy", "relu"):
        return t
    if kind == "transpose":
        return t.t().contiguous() if leaf == "weight" else t
    if kind == "per_joint":
        return _per_joint_to_theirs(t, leaf, None)
    if kind == "per_joint6d":
        return _per_joint_to_theirs(t, leaf, ROT6D_TO_REFERENCE)
    if kind == "squeeze":
        return t[None]
    if kind == "pose6d":
        return t[:, list(ROT6D_TO_REFERENCE)].reshape(1, -1).contiguous()
    raise ValueError(kind)


def _convert(
    state: dict[str, torch.Tensor], src: str, dst: str, fn: Callable[[str, torch.Tensor, str], torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Apply the first matching rule to each key; returns the converted dict and the keys no rule took."""
    patterns = [(rule, rule.pattern(src)) for rule in RULES]
    out: dict[str, torch.Tensor] = {}
    left: list[str] = []
    for key, tensor in state.items():
        for rule, pattern in patterns:
            match = pattern.match(key)
            if match:
                leaf = key.rsplit(".", 1)[-1]
                out[rule.fill(dst, match)] = fn(rule.kind, tensor, leaf)
                break
        else:
            left.append(key)
    return out, left


def unwrap_reference(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The model state dict inside a loaded checkpoint of theirs: {"model": ...} (their saver) or
    {"state_dict": ...} or the dict itself; a DataParallel "module." prefix is removed."""
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ReferenceKeyError(
            f"{source}: no state dict of tensors (looked in 'model', 'state_dict', the top)"
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def check_graph_buffers(state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Their graph buffers, where present, must equal the graphs our paper preset builds."""
    for key, ours in reference_graphs().items():
        if key in state and not torch.allclose(state[key].float().cpu(), ours, atol=1e-5):
            raise ReferenceKeyError(f"{source}: graph buffer {key} differs from the paper preset's graph")


def reference_to_ours(
    theirs: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
    source: str = "checkpoint",
    extra_drop: Iterable[str] = (),
) -> dict[str, torch.Tensor]:
    """Their state dict -> ours. `expected` is our model's state dict (names and shapes to fill).

    Raises ReferenceKeyError listing their keys no rule or drop takes, our keys left unfilled, and naming the
    first converted key whose shape does not fit."""
    drops = DROPPED_PREFIXES + tuple(extra_drop)
    check_graph_buffers(theirs, source)
    kept = {k: v for k, v in theirs.items() if not k.startswith(drops) and k not in GRAPH_BUFFERS}
    cam_shape = kept.pop(CAM_SHAPE, None)
    ours, left = _convert(kept, "theirs", "ours", _to_ours)
    if left:
        raise ReferenceKeyError(f"{source}: {len(left)} key(s) of theirs match no rule: " + ", ".join(left))
    if cam_shape is not None:
        flat = cam_shape.reshape(-1)
        ours["mean_cam"], ours["mean_betas"] = flat[:3].clone(), flat[3:].clone()
    for key, tensor in ours.items():  # their order: the first key that does not fit
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            theirs_key = _theirs_name(key)
            raise ReferenceKeyError(
                f"{source}: {theirs_key} -> {key} has shape {tuple(tensor.shape)}, the paper preset wants "
                f"{tuple(expected[key].shape)} (a checkpoint of another config?)"
            )
    missing = [k for k in expected if k not in ours]
    unexpected = [k for k in ours if k not in expected]
    if missing or unexpected:
        lines = [f"{source}: the converted weights do not fill the paper preset"]
        if missing:
            lines.append(f"  missing ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): " + ", ".join(unexpected))
        raise ReferenceKeyError("\n".join(lines))
    return {k: ours[k].to(expected[k].dtype) for k in expected}


def _theirs_name(our_key: str) -> str:
    if our_key in ("mean_cam", "mean_betas"):
        return CAM_SHAPE
    for rule in RULES:
        match = rule.pattern("ours").match(our_key)
        if match:
            return rule.fill("theirs", match)
    return our_key


def ours_to_reference(
    ours: dict[str, torch.Tensor], dims: ReferenceDims | None = None
) -> dict[str, torch.Tensor]:
    """Our paper-preset state dict -> their layout (the inverse of reference_to_ours, for tests and for
    sharing weights with their code). Modules they build but never run are zeros of their shape."""
    ours = dict(ours)
    cam, betas = ours.pop("mean_cam"), ours.pop("mean_betas")
    theirs, left = _convert(ours, "ours", "theirs", _to_theirs)
    if left:
        raise ReferenceKeyError(
            f"{len(left)} key(s) of ours have no counterpart of theirs: " + ", ".join(left)
        )
    theirs[CAM_SHAPE] = torch.cat([cam, betas])[None]
    theirs.update(reference_graphs())
    shapes = reference_keys(dims)
    for key, shape in shapes.items():
        if key.startswith(DROPPED_PREFIXES[:2]):
            dtype = torch.long if key.endswith("num_batches_tracked") else torch.float32
            theirs[key] = torch.zeros(shape, dtype=dtype)
    return {k: theirs[k] for k in shapes if k in theirs} | {
        k: v for k, v in theirs.items() if k not in shapes
    }


def dims_from_config(cfg) -> ReferenceDims:
    """The authors' layout at the widths of a paper-preset `DaNetConfig` (reduced in tests)."""
    h, st = cfg.iuv.hrnet, cfg.streams
    return ReferenceDims(
        hrnet_width=h.width,
        hrnet_stem=h.stem_width,
        layer1_planes=h.layer1_planes,
        layer1_blocks=h.layer1_blocks,
        stage_modules=tuple(h.stage_modules),
        stage_blocks=h.stage_blocks,
        resnet_width=st.global_resnet.width,
        resnet_blocks=tuple(st.global_resnet.layers or (2, 2, 2, 2)),
        stem_channels=st.stem_channels,
        rot_features=st.rotation_features,
        gcn_hidden=cfg.refine.hidden[0],
        gcn_layers=len(cfg.refine.hidden) + 1,
    )


def import_checkpoint(
    path,
    cfg=None,
    body_model: str = "anny-smpl24",
    extra_drop: Iterable[str] = (),
) -> dict:
    """Read their checkpoint at `path` (torch.load with weights_only=True: tensors and plain containers
    only) and return our checkpoint payload (model, config with resolved_model, step, body_model, source),
    the weights loaded strictly into DaNet(cfg) (default: the paper preset) as a check."""
    from pathlib import Path

    from model.config import config_to_dict, paper_config
    from model.danet import DaNet

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged or pickled-code file
        raise ValueError(f"{path}: not a torch file of tensors ({err})") from err
    cfg = cfg or paper_config()
    network = DaNet(cfg)
    state = reference_to_ours(unwrap_reference(obj, str(path)), network.state_dict(), str(path), extra_drop)
    network.load_state_dict(state, strict=True)
    step = obj.get("total_step_count", 0) if isinstance(obj, dict) else 0
    return {
        "model": network.state_dict(),
        "config": {"resolved_model": config_to_dict(cfg), "imported_from": str(path)},
        "step": int(step) if isinstance(step, int | float) else 0,
        "body_model": body_model,
    }
