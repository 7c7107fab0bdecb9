"""The authors' checkpoint layout: every key and shape of DaNet's state dict in their code, as facts.

Derived by reading HongwenZhang/DaNet-3DHumanReconstruction (models/danet/danet.py, iuv_estimator.py,
smpl_regressor.py, models/module/hr_module.py, res_module.py, GCN.py; configs/danet_h36m_itw.yaml:
DECOMPOSED, INPUT_MODE iuv, IUV_REGRESSOR hrnet, GLO_NUM_LAYERS 18, USE_6D_ROT, USE_LEARNED_RATIO,
REFINE_STRATEGY gcn, REFINEMENT FEAT_DIM 128, GCN_NUM_LAYER 3, POS_INTERSUPV). Written from their module
rules, independently of this project's modules, so a test can hold our converter against it.
`reference_keys(ReferenceDims())` is the released model (HRNet-W48, ResNet-18 streams); `model/
reference_keys_w48.json` is that listing as data. Their saver drops `iuv2smpl.smpl.*` (the SMPL body).

Module tree (their names):
  img2iuv.learned_ratio, learned_offset (24,): RoI alpha / delta buffers (used through ReLU)
  img2iuv.iuv_est: PoseHighResolutionNet (conv1, bn1, conv2, bn2, layer1, transition1..3, stage2..4) and
    final_pred: predict_u / predict_v / predict_uv_index (25, 3x3), predict_ann_index (15, 3x3),
    predict_hm (3 Bottlenecks of C/4 planes + 3x3 conv to 24), predict_partial_iuv (3x3, groups 24,
    out 24 x [U|V|I] x 7)
  iuv2smpl.smpl_para_Outs (DecomposedPredictor):
    mean_cam_shape (1, 13), mean_pose (1, 144) (24 x 6D, their 6D order: a 3x2 block row-major)
    body_net: 0 conv 75->64 1x1 no bias, 1 BN, 2 ReLU, 3 SmplResNet-18 (in 64, final_layer 512->13)
    limb_net: 0 conv 21->64, 1 BN, 2 ReLU, 3 SmplResNet-18 truncated after layer3
    limb_reslayer.layer4: ResNet-18 layer4 with groups 24 (256 -> 128 per joint)
    rot2pos (24 x conv/BN blocks), pos2rot: built but unused by the "gcn" strategy
    coord_regressors.{0,1}.1, pose_regressors.{0,1}.1: 1x1 convs with groups 24 (3 / 6 outputs per joint)
    I_n, A_link, A, A_mask, r2p_A, p2r_A (1, 24, 24): graph buffers; edge_importance (1, 24, 24) parameter
    refine_gcn (3 GraphConv layers 128-256-256-128, weight (in, out), each + BatchNorm1d(24) + ReLU),
    r2p_gcn, p2r_gcn (1 layer 128-128 + BatchNorm1d(24) + ReLU)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

Shape = tuple[int, ...]
LISTING_W48 = Path(__file__).with_name("reference_keys_w48.json")
JOINTS = 24


@dataclass(frozen=True)
class ReferenceDims:
    """Widths of the authors' network (defaults: the released model); smaller values describe the same
    layout at reduced size for tests."""

    hrnet_width: int = 48  # branch widths w, 2w, 4w, 8w
    hrnet_stem: int = 64
    layer1_planes: int = 64
    layer1_blocks: int = 4
    stage_modules: tuple[int, int, int] = (1, 4, 3)
    stage_blocks: int = 4
    resnet_width: int = 64  # ResNet-18 streams: stage widths w, 2w, 4w, 8w
    resnet_blocks: tuple[int, int, int, int] = (2, 2, 2, 2)
    stem_channels: int = 64  # the 1x1 conv in front of each stream's ResNet
    rot_features: int = 128  # REFINEMENT.FEAT_DIM
    gcn_hidden: int = 256
    gcn_layers: int = 3
    parts: int = 7  # 1 + len(dp2smpl_mapping[k])
    rot2pos_hidden: int = 512  # the unused "lstm"-strategy modules still in the checkpoint
    pos2rot_hidden: int = 1024


def _bn(out: dict[str, Shape], prefix: str, c: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        out[f"{prefix}.{name}"] = (c,)
    out[f"{prefix}.num_batches_tracked"] = ()


def _conv(
    out: dict[str, Shape], prefix: str, cout: int, cin_per_group: int, k: int, bias: bool = False
) -> None:
    out[f"{prefix}.weight"] = (cout, cin_per_group, k, k)
    if bias:
        out[f"{prefix}.bias"] = (cout,)


def _basic(out, prefix: str, cin: int, planes: int, downsample: bool, groups: int = 1) -> None:
    """res_module.BasicBlock(inplanes, planes, groups): convs of planes * groups channels."""
    _conv(out, f"{prefix}.conv1", planes * groups, cin, 3)
    _bn(out, f"{prefix}.bn1", planes * groups)
    _conv(out, f"{prefix}.conv2", planes * groups, planes, 3)
    _bn(out, f"{prefix}.bn2", planes * groups)
    if downsample:
        _conv(out, f"{prefix}.downsample.0", planes * groups, cin, 1)
        _bn(out, f"{prefix}.downsample.1", planes * groups)


def _bottleneck(out, prefix: str, cin: int, planes: int) -> None:
    _conv(out, f"{prefix}.conv1", planes, cin, 1)
    _bn(out, f"{prefix}.bn1", planes)
    _conv(out, f"{prefix}.conv2", planes, planes, 3)
    _bn(out, f"{prefix}.bn2", planes)
    _conv(out, f"{prefix}.conv3", planes * 4, planes, 1)
    _bn(out, f"{prefix}.bn3", planes * 4)
    if cin != planes * 4:
        _conv(out, f"{prefix}.downsample.0", planes * 4, cin, 1)
        _bn(out, f"{prefix}.downsample.1", planes * 4)


def _hrnet(out, p: str, d: ReferenceDims) -> None:
    """hr_module.PoseHighResolutionNet trunk; the last module of stage 4 fuses into branch 0 only."""
    _conv(out, f"{p}.conv1", d.hrnet_stem, 3, 3)
    _bn(out, f"{p}.bn1", d.hrnet_stem)
    _conv(out, f"{p}.conv2", d.hrnet_stem, d.hrnet_stem, 3)
    _bn(out, f"{p}.bn2", d.hrnet_stem)
    cin = d.hrnet_stem
    for b in range(d.layer1_blocks):
        _bottleneck(out, f"{p}.layer1.{b}", cin, d.layer1_planes)
        cin = d.layer1_planes * 4
    prev = [cin]
    for s, modules in zip((2, 3, 4), d.stage_modules):
        cur = [d.hrnet_width * 2**i for i in range(s)]
        for i, c in enumerate(cur):  # transition{s-1}
            t = f"{p}.transition{s - 1}.{i}"
            if i < len(prev):
                if prev[i] != c:
                    _conv(out, f"{t}.0", c, prev[i], 3)
                    _bn(out, f"{t}.1", c)
            else:
                for k in range(i + 1 - len(prev)):
                    c_out = c if k == i - len(prev) else prev[-1]
                    _conv(out, f"{t}.{k}.0", c_out, prev[-1], 3)
                    _bn(out, f"{t}.{k}.1", c_out)
        for m in range(modules):
            mp = f"{p}.stage{s}.{m}"
            for b, c in enumerate(cur):
                for k in range(d.stage_blocks):
                    _basic(out, f"{mp}.branches.{b}.{k}", c, c, False)
            outputs = 1 if (s == 4 and m == modules - 1) else len(cur)
            for i in range(outputs):
                for j in range(len(cur)):
                    f = f"{mp}.fuse_layers.{i}.{j}"
                    if j > i:
                        _conv(out, f"{f}.0", cur[i], cur[j], 1)
                        _bn(out, f"{f}.1", cur[i])
                    elif j < i:
                        for k in range(i - j):
                            c_out = cur[i] if k == i - j - 1 else cur[j]
                            _conv(out, f"{f}.{k}.0", c_out, cur[j], 3)
                            _bn(out, f"{f}.{k}.1", c_out)
        prev = cur


def _smpl_resnet(out, p: str, d: ReferenceDims, cin: int, stages: int, classes: int) -> int:
    """res_module.SmplResNet(18): conv1 7x7, layer1..layer{stages}, final_layer when classes > 0."""
    w = d.resnet_width
    _conv(out, f"{p}.conv1", w, cin, 7)
    _bn(out, f"{p}.bn1", w)
    c = w
    for s in range(stages):
        planes = w * 2**s
        for b in range(d.resnet_blocks[s]):
            _basic(out, f"{p}.layer{s + 1}.{b}", c, planes, b == 0 and c != planes)
            c = planes
    if classes:
        out[f"{p}.final_layer.weight"] = (classes, c)
        out[f"{p}.final_layer.bias"] = (classes,)
    return c


def _gcn(out, p: str, sizes: list[int]) -> None:
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        out[f"{p}.gc.{i}.weight"] = (a, b)
        out[f"{p}.gc.{i}.bias"] = (b,)
        _bn(out, f"{p}.act.{i}.0", JOINTS)


def reference_keys(d: ReferenceDims | None = None) -> dict[str, Shape]:
    """Every key of the authors' DaNet state dict (as their saver writes it) and its shape."""
    d = d or ReferenceDims()
    out: dict[str, Shape] = {}
    out["img2iuv.learned_ratio"] = (JOINTS,)
    out["img2iuv.learned_offset"] = (JOINTS,)
    est = "img2iuv.iuv_est"
    _hrnet(out, est, d)
    c = d.hrnet_width
    fp = f"{est}.final_pred"
    for name, n in (
        ("predict_u", 25),
        ("predict_v", 25),
        ("predict_ann_index", 15),
        ("predict_uv_index", 25),
    ):
        _conv(out, f"{fp}.{name}", n, c, 3, bias=True)
    for b in range(3):
        _bottleneck(out, f"{fp}.predict_hm.0.{b}", c, c // 4)
    _conv(out, f"{fp}.predict_hm.1", JOINTS, c, 3, bias=True)
    _conv(out, f"{fp}.predict_partial_iuv", JOINTS * 3 * d.parts, c, 3, bias=True)

    sp = "iuv2smpl.smpl_para_Outs"
    out[f"{sp}.mean_cam_shape"] = (1, 13)
    out[f"{sp}.mean_pose"] = (1, JOINTS * 6)
    _conv(out, f"{sp}.body_net.0", d.stem_channels, 75, 1)
    _bn(out, f"{sp}.body_net.1", d.stem_channels)
    _smpl_resnet(out, f"{sp}.body_net.3", d, d.stem_channels, 4, 13)
    _conv(out, f"{sp}.limb_net.0", d.stem_channels, 3 * d.parts, 1)
    _bn(out, f"{sp}.limb_net.1", d.stem_channels)
    c3 = _smpl_resnet(out, f"{sp}.limb_net.3", d, d.stem_channels, 3, 0)
    r = d.rot_features
    for b in range(d.resnet_blocks[3]):  # LimbResLayers: layer4 with groups = 24
        _basic(out, f"{sp}.limb_reslayer.layer4.{b}", c3 if b == 0 else r, r, b == 0, groups=JOINTS)
    for i in range(JOINTS):  # rot2pos: unused by the gcn strategy
        q = f"{sp}.rot2pos.{i}"
        _conv(out, f"{q}.0", d.rot2pos_hidden, 2 * r, 1, bias=True)
        _bn(out, f"{q}.1", d.rot2pos_hidden)
        _conv(out, f"{q}.3", r, d.rot2pos_hidden, 1, bias=True)
        _bn(out, f"{q}.4", r)
    _conv(out, f"{sp}.pos2rot.0", d.pos2rot_hidden, 3 * r, 1, bias=True)  # unused too
    _bn(out, f"{sp}.pos2rot.1", d.pos2rot_hidden)
    _conv(out, f"{sp}.pos2rot.3", r, d.pos2rot_hidden, 1, bias=True)
    _bn(out, f"{sp}.pos2rot.4", r)
    for i in range(2):
        _conv(out, f"{sp}.coord_regressors.{i}.1", 3 * JOINTS, r, 1, bias=True)
    for i in range(2):
        _conv(out, f"{sp}.pose_regressors.{i}.1", 6 * JOINTS, r, 1, bias=True)
    for name in ("I_n", "A_link", "A", "A_mask"):
        out[f"{sp}.{name}"] = (1, JOINTS, JOINTS)
    out[f"{sp}.edge_importance"] = (1, JOINTS, JOINTS)
    _gcn(out, f"{sp}.refine_gcn", [r] + [d.gcn_hidden] * (d.gcn_layers - 1) + [r])
    out[f"{sp}.r2p_A"] = (1, JOINTS, JOINTS)
    _gcn(out, f"{sp}.r2p_gcn", [r, r])
    out[f"{sp}.p2r_A"] = (1, JOINTS, JOINTS)
    _gcn(out, f"{sp}.p2r_gcn", [r, r])
    return out


def load_listing(path: Path = LISTING_W48) -> dict[str, Shape]:
    """The released model's listing from the JSON data file."""
    data = json.loads(path.read_text())
    return {k: tuple(v) for k, v in data["keys"].items()}


def write_listing(path: Path = LISTING_W48) -> None:
    """Regenerate the JSON data file (run `python -m model.reference_keys`)."""
    keys = reference_keys()
    source = (
        "HongwenZhang/DaNet-3DHumanReconstruction, configs/danet_h36m_itw.yaml (see model/reference_keys.py)"
    )
    rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(list(v))}" for k, v in keys.items())
    text = f'{{"source": {json.dumps(source)},\n"count": {len(keys)},\n"keys": {{\n{rows}\n}}}}\n'
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(path)


if __name__ == "__main__":
    write_listing()
    print(f"{LISTING_W48}: {len(reference_keys())} keys")
