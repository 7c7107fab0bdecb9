"""Typed configuration of the DaNet network, with a "paper" preset and a "tiny" preset for CPU tests.

Every knob of Sections 4.1-4.3, every ablation switch of Section 5.4 and every loss weight is a field here.
Configs load from a nested dict or a YAML file through model/config_schema.py, the coercion rule shared with
the training config: unknown keys and bad values are a ConfigError naming the file and the dotted key, so a
typo in a YAML file never silently falls back to a default (docs/design.md, "Configs").
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from model.config_schema import ConfigError, build, choose, load_yaml, parse_number, to_plain
from pipeline.conventions import REFERENCE_CROP, REFERENCE_FOCAL


@dataclass
class ResNetConfig:
    """A torchvision-layout ResNet. `width` scales every stage (64 = torchvision); `depth` picks the block."""

    depth: Literal[18, 34, 50, 101] = 18
    width: int = 64
    layers: tuple[int, ...] | None = None  # blocks per stage; None = the standard count for `depth`
    stem_stride: Literal[1, 2, 4] = 4  # 4 = torchvision's conv1 + max-pool; 2 / 1 for small inputs
    pretrained: str | None = None  # path to a torchvision-layout state dict (.pth)


@dataclass
class HRNetConfig:
    """A timm-layout HRNet (W48: width 48; W32: width 32); stem and layer1 sizes shrink for tiny runs."""

    width: int = 48
    stem_width: int = 64
    layer1_planes: int = 64
    layer1_blocks: int = 4
    stage_modules: tuple[int, int, int] = (1, 4, 3)
    stage_blocks: int = 4
    pretrained: str | None = None  # path to a timm-layout state dict


@dataclass
class IUVConfig:
    """IUV estimator: HRNet (paper) or a ResNet simple baseline with a deconvolution head."""

    arch: Literal["hrnet", "resnet"] = "hrnet"
    hrnet: HRNetConfig = field(default_factory=HRNetConfig)
    resnet: ResNetConfig = field(default_factory=lambda: ResNetConfig(depth=50))
    deconv_channels: int = 256  # simple-baseline deconvolution width
    head_channels: int = 48  # width of the shared 3x3 conv in front of the 1x1 prediction heads ("neck")
    heatmap_beta: float = 10.0  # soft-argmax of softmax(beta * heatmap)
    # "neck" (ours): a shared 3x3 conv + BN + ReLU of head_channels, then 1x1 heads; the RoIs pool the neck's
    # features. "direct" (the authors'): 3x3 convs straight on the backbone features for I, U, V and the
    # coarse index, the joint heatmaps from 3 bottleneck blocks + a 3x3 conv; the RoIs pool the backbone's
    # features. The neck is what the demo's estimator was trained with.
    head: Literal["neck", "direct"] = "neck"
    # "shared" (ours): one IUVHeads module shared by all joints (a channel of the simplified 7-channel maps
    # means a different part for different joints). "grouped" (the authors'): one 3x3 conv per joint
    # (groups = 24) over the 24 RoI crops stacked along channels, each joint's output [U | V | I] x 7.
    partial_head: Literal["shared", "grouped"] = "shared"
    # Pixel coordinates of the soft-argmax: "centers" ((i + 0.5) / W * 2 - 1, align_corners=False, ours) or
    # "index" (i / W * 2 - 1, the authors', read with align_corners=True sampling: RoIConfig.align_corners).
    heatmap_grid: Literal["centers", "index"] = "centers"


@dataclass
class RoIConfig:
    """Joint-centric RoI pooling (Section 4.2)."""

    size: int = 32  # partial IUV side in pixels
    scale_mode: Literal["bone", "box"] = (
        "bone"  # bone lengths (reference code) or foreground box (paper Eq. 2)
    )
    alpha_mode: Literal["joint", "equal"] = "joint"  # per-joint alpha/delta, or their means for every joint
    learnable: bool = False  # alpha_k / delta_k as trainable parameters
    # Eq. 2 mode has no published constants: every joint starts from these (learnable makes them per joint).
    box_alpha: float = 0.25
    box_delta: float = 0.05
    min_scale: float = 0.05  # lower bound of a RoI's scale (fraction of the map side)
    jitter_position: float = 0.1  # training-time centre jitter, fraction of the RoI scale
    jitter_scale: float = 0.1  # training-time relative scale jitter
    simplified: bool = True  # 6 parts + background per joint (21 channels) or all 24 parts (75 channels)
    detach_centers: bool = True  # RoI placement does not back-propagate into the heatmaps
    # Bone length of a joint: the longer of its bones to the parent and "all" children (ours) or to the parent
    # and "one" designated child (the authors' table, model.roi.REFERENCE_CHILD; e.g. spine3 -> neck only).
    bone_children: Literal["all", "one"] = "all"
    # Hidden-joint fallback (the authors'): a non-root joint whose parts' hard-index score at its centre is
    # below hidden_score gets hidden_box x half the joint box as its scale; 0 turns it off (ours).
    hidden_score: float = 0.0
    hidden_box: float = 0.8
    # "relative" (ours): centre +- jitter_position x scale, scale x (1 +- jitter_scale), uniform.
    # "reference" (the authors'): centre + jitter_position x (u - 0.5) in map units, scale x (1 +
    # jitter_scale x (u - 0.5)) applied before and again after the hidden-joint fallback.
    jitter_mode: Literal["relative", "reference"] = "relative"
    # Sampling convention of the RoI crops (affine_grid / grid_sample): False (ours) or True (the authors',
    # PyTorch 1.1's only behaviour).
    align_corners: bool = False
    # In training, centre the RoIs on the ground-truth 2D joints (targets["joints2d_smpl"]) where visible,
    # instead of the predicted ones; evaluation always uses the predictions.
    gt_centers_in_training: bool = False


@dataclass
class StreamConfig:
    """Global (camera + shape) and local (per-joint rotation) streams."""

    global_resnet: ResNetConfig = field(default_factory=ResNetConfig)
    local_resnet: ResNetConfig = field(default_factory=ResNetConfig)
    rotation_features: int = 128  # C, per joint
    # Channels the 1x1 adapter maps the IUV maps to before each ResNet: 3 keeps torchvision's stem, so
    # ImageNet weights load; a network trained from scratch can keep more of the part information.
    adapter_channels: int = 3
    # "adapter" (ours): a linear 1x1 conv (with bias) to adapter_channels in front of the ResNet's own stem.
    # "conv_bn_relu" (the authors'): 1x1 conv (no bias) -> stem_channels + BN + ReLU, the ResNet's conv1
    # then reads stem_channels.
    stem: Literal["adapter", "conv_bn_relu"] = "adapter"
    stem_channels: int = 64
    # What the streams read: "softmax" (ours): [P | U*P | V*P] with P the softmax of the index logits and
    # zero background U/V; "onehot" (the authors'): [U*H | V*H | H] with H the hard one-hot of the argmax
    # (background U/V kept under H's background channel). Gradients reach U/V only through U*H, V*H.
    maps: Literal["softmax", "onehot"] = "softmax"


@dataclass
class RefineConfig:
    """Aggregated refinement (Section 4.3). variant "none" is D-Net."""

    variant: Literal["none", "direct", "position_implicit", "position_aided"] = "position_aided"
    learnable_edges: bool = True
    hidden: tuple[int, ...] = (256, 256)  # refinement graph: C -> hidden... -> C
    # Options where the authors' graphs differ from ours (ours first):
    norm: Literal["row", "symmetric"] = "row"  # refinement graph: D^-1 A or D^-1/2 A D^-1/2
    batchnorm: Literal["channels", "joints"] = "channels"  # BatchNorm1d over C or over the 24 joints
    shared_mask: bool = False  # one learnable edge mask for all refinement layers instead of one per layer
    last_norm_act: bool = False  # BatchNorm + ReLU after the refinement graph's last layer too
    rot_to_pos_self_loop: bool = True  # rotation->position reads the joint's own rotation (authors: no)
    neck_shoulder_edges: bool = False  # refinement edges 12-16 and 12-17 (neck - shoulders), the authors'


@dataclass
class PartDropConfig:
    """Drop strategy applied to the global and partial IUV maps during training."""

    kind: Literal["none", "partdrop", "dropout", "dropblock"] = "partdrop"
    rate: float = 0.3
    block_size: int = 7  # DropBlock side in pixels of the global map (scaled for partial maps)


@dataclass
class LossConfig:
    """Loss weights and forms. The defaults are this project's own losses (the tiny preset, the demo);
    `reference_loss_config()` gives the authors' trainer's (the paper preset; docs/reference-losses.md)."""

    # The weights were read off the authors' config (HongwenZhang/DaNet-DensePose2SMPL,
    # configs/danet_default.yaml, DANET.*), where 0.3 (PART_WEIGHTS) and 2.0 (INDEX_WEIGHTS) weigh the
    # DensePose-COCO point losses, not the rendered maps'; kept so that the demo trains as before.
    # reference_loss_config() has the authors' own weights for the rendered maps.
    pose: float = 60.0
    betas: float = 0.06
    kp2d: float = 300.0
    kp3d: float = 300.0
    refine_position: float = 1.0
    roi: float = 1.0  # partial IUV maps' terms: roi x part_index, roi x uv
    coarse_index: float = 2.0
    part_index: float = 0.3
    uv: float = 0.5
    # DensePose-COCO's sparse labels (model/point_losses.py), the same weights in every preset: the authors'
    # PART_WEIGHTS (point part index), POINT_REGRESSION_WEIGHTS (point U, V) and INDEX_WEIGHTS (coarse masks).
    dp_part_index: float = 0.3
    dp_uv: float = 0.5
    dp_coarse_index: float = 2.0
    joints2d: float = 1.0  # soft-argmax joint positions (RoI centres) in [-1, 1], see joints2d_form
    index_foreground_weight: float = 1.0  # part pixels vs background in the index cross-entropies (1 = mean)
    refine_rotation: float = 60.0  # rotation supervision of the intermediate features X (same scale as pose)
    orthogonality: float = 0.1  # only used with rotation="matrix"
    vertices: float = 0.0  # per-vertex L1; off by default like the reference
    # Frame of the 3D keypoint loss: "camera" (the reference: pelvis-relative, camera axes) or "body" (each
    # skeleton turned back by its own root rotation, so a wrong global orientation does not push the joint
    # rotations to make up for it; the root is still learnt from the pose and 2D keypoint losses).
    kp3d_frame: Literal["camera", "body"] = "camera"
    # How each term is reduced; the first choice is ours (kept for the tiny preset, not measured against the
    # authors' form), the second the authors'. uv_form: "l1_mean" = U+V L1 averaged over each sample's
    # foreground pixels, then over the samples with maps; "smooth_l1_sum" = smooth-L1 summed over every pixel's
    # labelled channel (background channel included, target 0) / batch size (partial maps: also / 24 joints).
    uv_form: Literal["l1_mean", "smooth_l1_sum"] = "l1_mean"
    # joints2d_form: "l1_mean" = L1 averaged over visible joints; "smooth_l1_sum" = visibility-weighted
    # smooth-L1 summed over joints and x, y / batch size.
    joints2d_form: Literal["l1_mean", "smooth_l1_sum"] = "l1_mean"
    # refine_position_form: "mse_mean" = squared distance averaged over joints and over the Y, Y^ stages;
    # "l1_sum" = L1 summed over joints and x, y, z, per stage, stages added (5 cm off along one axis at every
    # joint: 0.0025 against 1.2 per stage, ~500x). refine_position_frame: "pelvis" = ground-truth joints minus the pelvis; "model" = the joints of the
    # body posed without translation, as the authors regress them.
    refine_position_form: Literal["mse_mean", "l1_sum"] = "mse_mean"
    refine_position_frame: Literal["pelvis", "model"] = "pelvis"
    # keypoint_mean: "visible" = confidence-weighted mean over the visible joints of each sample, then over the
    # samples with any; "all_entries" = confidence times squared error averaged over every entry: 3D over the
    # samples with 3D labels x 24 joints x 3, 2D over all samples x SPIN's 49 rows x 2 (25 OpenPose rows at 0).
    keypoint_mean: Literal["visible", "all_entries"] = "visible"
    cam_positive: float = 0.0  # weight of mean(exp(-10 s)^2), the authors' push towards a positive scale s
    focal_length: float = REFERENCE_FOCAL
    image_size: float = REFERENCE_CROP  # the crop the weak-perspective camera refers to


def reference_loss_config() -> LossConfig:
    """The losses of the authors' trainer (HongwenZhang/DaNet-DensePose2SMPL, configs/danet_default.yaml,
    DANET.*; docs/reference-losses.md): their weights and their reductions.

    By LossConfig name: SMPL_POSE_WEIGHTS (final and pre-refinement rotations), SMPL_BETAS_WEIGHTS,
    PROJ_KPS_WEIGHTS, KPS3D_WEIGHTS, VERTS_WEIGHTS, ORTHOGONAL_WEIGHTS, JOINT_POSITION_WEIGHTS, STN_KPS_WEIGHTS
    (RoI centres); POINT_REGRESSION_WEIGHTS multiplies U and V of the rendered maps too; their index and
    coarse cross-entropies and the camera-scale term carry no weight (1); the partial maps' terms are averaged
    over the 24 joints with the same weights (roi 1). The DensePose-COCO point weights are LossConfig's."""
    return LossConfig(
        pose=60.0,
        refine_rotation=60.0,
        betas=0.06,
        kp2d=300.0,
        kp3d=300.0,
        vertices=0.0,
        orthogonality=0.0,
        refine_position=1.0,
        joints2d=1.0,
        uv=0.5,
        part_index=1.0,
        coarse_index=1.0,
        roi=1.0,
        cam_positive=1.0,
        uv_form="smooth_l1_sum",
        joints2d_form="smooth_l1_sum",
        refine_position_form="l1_sum",
        refine_position_frame="model",
        keypoint_mean="all_entries",
    )


@dataclass
class DaNetConfig:
    """The whole network."""

    image_size: int = 224
    iuv: IUVConfig = field(default_factory=IUVConfig)
    roi: RoIConfig = field(default_factory=RoIConfig)
    streams: StreamConfig = field(default_factory=StreamConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    drop: PartDropConfig = field(default_factory=PartDropConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    rotation: Literal["6d", "matrix"] = "6d"
    # Decomposed perception (Section 4.2). False is the ablation baseline: the global stream regresses the
    # joint rotations too, and there are no local streams or refinement (partial IUV is still estimated).
    decompose: bool = True
    # The streams read the predicted IUV maps as inputs without back-propagating into the IUV estimator, which
    # learns from L_inter alone; otherwise the 300-weighted keypoint losses swamp the index cross-entropy.
    detach_maps: bool = True
    # Teacher forcing: in training, the streams read the ground-truth global and partial IUV maps (samples
    # that have them) instead of the estimator's; inference always reads the estimator's maps.
    gt_maps_in_training: bool = False
    mean_params: str | None = None  # smpl_mean_params.npz (pose 144 = 24x6D, shape 10, cam 3)

    @property
    def feature_size(self) -> int:
        """Side of the IUV maps: a quarter of the input (56 for 224)."""
        return self.image_size // 4


def paper_config() -> DaNetConfig:
    """The authors' TPAMI network (HongwenZhang/DaNet-3DHumanReconstruction, configs/danet_h36m_itw.yaml):
    HRNet-W48 IUV estimator with 3x3 heads on its features, grouped 56x56 partial heads, the reference RoI
    rule with the hidden-joint fallback, ResNet-18 streams behind a 1x1 conv + BN + ReLU stem fed hard
    one-hot [U | V | I] maps (not detached), and their refinement graphs. docs/reference.md lists every
    component next to ours; their losses and weights: docs/reference-losses.md."""
    return DaNetConfig(
        iuv=IUVConfig(head="direct", partial_head="grouped", heatmap_grid="index"),
        roi=RoIConfig(
            size=56,
            bone_children="one",
            hidden_score=0.5,
            min_scale=0.0,
            jitter_mode="reference",
            jitter_position=0.1,
            jitter_scale=0.2,
            align_corners=True,
        ),
        streams=StreamConfig(stem="conv_bn_relu", maps="onehot"),
        refine=RefineConfig(
            hidden=(256, 256),
            norm="symmetric",
            batchnorm="joints",
            shared_mask=True,
            last_norm_act=True,
            rot_to_pos_self_loop=False,
            neck_shoulder_edges=True,
        ),
        detach_maps=False,
        loss=reference_loss_config(),  # the authors' trainer (docs/reference-losses.md)
    )


def tiny_config() -> DaNetConfig:
    """A 0.5 M-parameter network of the same structure for CPU tests: narrow HRNet and ResNets, 64x64 input.

    Its partial maps are 8x8 where the paper's are 32x32, so the local streams' stem keeps stride 1 (the
    paper's layer1 sees 8x8 maps; torchvision's stride-4 stem would leave 2x2), and the global stream's
    stride 2 keeps its layer1 near the paper's 14x14."""
    tiny_resnet = ResNetConfig(depth=18, width=8, layers=(1, 1, 1, 1))
    global_resnet = dataclasses.replace(tiny_resnet, stem_stride=2)
    local_resnet = dataclasses.replace(tiny_resnet, stem_stride=1)
    return DaNetConfig(
        image_size=64,
        iuv=IUVConfig(
            hrnet=HRNetConfig(
                width=8,
                stem_width=16,
                layer1_planes=8,
                layer1_blocks=1,
                stage_modules=(1, 1, 1),
                stage_blocks=1,
            ),
            resnet=ResNetConfig(depth=18, width=8, layers=(1, 1, 1, 1)),
            deconv_channels=16,
            head_channels=16,
        ),
        roi=RoIConfig(size=8),
        streams=StreamConfig(global_resnet=global_resnet, local_resnet=local_resnet, rotation_features=16),
        refine=RefineConfig(hidden=(32, 32)),
    )


PRESETS = {"paper": paper_config, "tiny": tiny_config}


def preset(name: str, key: str = "preset") -> DaNetConfig:
    """A named preset ("paper" or "tiny"); ConfigError at `key` listing them otherwise."""
    return PRESETS[choose(name, PRESETS, key, what="preset")]()


# The switches of the paper's ablation study (Section 5.4), as overrides of a preset.
ABLATIONS: dict[str, dict[str, Any]] = {
    "global_only": {"decompose": False},
    "dnet": {"refine": {"variant": "none"}},
    "refine_direct": {"refine": {"variant": "direct"}},
    "refine_position_implicit": {"refine": {"variant": "position_implicit"}},
    "refine_position_aided": {"refine": {"variant": "position_aided"}},
    "fixed_edges": {"refine": {"learnable_edges": False}},
    "no_drop": {"drop": {"kind": "none"}},
    "dropout": {"drop": {"kind": "dropout"}},
    "dropblock": {"drop": {"kind": "dropblock"}},
    "equal_roi_scale": {"roi": {"alpha_mode": "equal"}},
    "learnable_roi": {"roi": {"learnable": True}},
    "box_roi_scale": {"roi": {"scale_mode": "box"}},
    "all_parts": {"roi": {"simplified": False}},
    "matrix_rotations": {"rotation": "matrix"},
}


def ablation_overrides(name: str, key: str = "ablation") -> dict[str, Any]:
    """The overrides of ablation `name`; ConfigError at `key` listing every ablation otherwise."""
    return ABLATIONS[choose(name, ABLATIONS, key, what="ablation")]


def resolve_config(
    preset_name: str | None = "paper",
    ablation_name: str | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    preset_key: str = "preset",
    ablation_key: str = "ablation",
    overrides_key: str = "",
    source: str | None = None,
) -> DaNetConfig:
    """The network: preset (None: the dataclass defaults), then the ablation switch, then `overrides`, each
    merged field by field over the last. The keys name where each part sits in the whole config, for the
    messages (a training config: model.preset, model.ablation, model.overrides); `source` names the file."""
    try:
        config = preset(preset_name, preset_key) if preset_name is not None else DaNetConfig()
        if ablation_name is not None:
            config = build(DaNetConfig, ablation_overrides(ablation_name, ablation_key), base=config)
        return build(DaNetConfig, overrides or {}, base=config, key=overrides_key)
    except ConfigError as err:
        raise err.at(source) from None


def ablation(name: str, base: str = "paper") -> DaNetConfig:
    """The `base` preset with one ablation switch of ABLATIONS applied."""
    return resolve_config(base, name)


def config_from_dict(
    data: dict[str, Any], base: str | None = None, *, source: str | None = None
) -> DaNetConfig:
    """Build a config from a nested dict; `base` (or data["preset"]) names the preset it overrides.

    Nested sections merge field by field over the preset, e.g. {"preset": "tiny", "roi": {"size": 16}}.
    Any bad key or value is a ConfigError naming its dotted key (and `source`, the file, when given).
    """
    data = dict(data)
    return resolve_config(data.pop("preset", base), None, data, source=source)


def load_config(path: str | os.PathLike[str]) -> DaNetConfig:
    """Read a YAML config file (see config_from_dict for the layout); ConfigError naming the file."""
    return config_from_dict(load_yaml(path), source=str(path))


def config_to_dict(config: DaNetConfig) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) suitable for YAML/JSON."""
    return to_plain(config)


__all__ = [
    "ABLATIONS",
    "PRESETS",
    "ConfigError",
    "DaNetConfig",
    "ablation",
    "ablation_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "paper_config",
    "parse_number",
    "preset",
    "reference_loss_config",
    "resolve_config",
    "tiny_config",
]
