"""The IUV renderer interface of the render stage, and how a ``--renderer`` spec becomes a renderer.

A renderer is any callable that satisfies :class:`Renderer`. The shard builder (pipeline/shard_build.py)
calls it with batches of prepared manifest rows and stores what it returns as each sample's ``iuv.png``.
A spec (``--renderer``, recorded in index.json) is ``"module:name"``: ``name`` is a :class:`Renderer`
itself, called as is, or a :class:`RendererFactory` that declares which of the run's settings (``device``,
``body``) it takes and builds the renderer from exactly those. The default spec names the SMPL -> IUV
renderer (pipeline/render/manifest_iuv.py) through :data:`BUILT_IN`. docs/design.md, "The render stage",
says what to implement to plug in another renderer.

Specs come from the command line, i.e. from the person running the stage: importing the named module is
the feature. A spec must still be two plain dotted Python names (no file paths, no relative imports, no
private ``_name``), and the named object must be a renderer or a factory (not a class, not data); anything
else is a :class:`RendererSpecError` naming the spec.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from pipeline.body.spec import BodySpec

DEFAULT_RENDERER = "pipeline.render.manifest_iuv:render_manifest_iuv"
SETTINGS = frozenset({"device", "body"})  # what a factory may ask for
_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z]\w*")


class Renderer(Protocol):
    """Ground-truth IUV maps for one batch of manifest rows.

    ``rows``: manifest rows as dicts (pipeline/datasets/schema.py): ``has_smpl``; where it is true,
    ``pose`` (72 SMPL axis-angle values, radians, root in the camera frame) and ``betas`` (10); ``gender``;
    ``kp2d`` (24 x 3: x, y in image pixels and visibility, SPIN-24 order); any other column as stored.
    ``crop_transforms``: one (2, 3) float64 affine per row, image pixels -> crop pixels (pipeline/crop.py;
    pixel centres at integers). ``crop_size``: the crop side S in pixels.

    Returns one entry per row, in order: an (S, S, 3) uint8 IUV map (I = DensePose part 0..24 with 0 the
    background, U and V = round(255 u), round(255 v); pipeline/render/iuv.py), or None for a row without an
    SMPL fit (that sample gets no ``iuv.png`` and ``has_iuv`` false). An exception fails the batch; the
    builder then renders its rows one by one and each row that fails alone becomes a reject naming it.
    The output must depend on the inputs only: shards are byte-reproducible.
    """

    def __call__(
        self, rows: Sequence[dict], crop_transforms: Sequence[np.ndarray], crop_size: int
    ) -> list[np.ndarray | None]: ...


@dataclass(frozen=True)
class RendererFactory:
    """A renderer that needs some of the run's settings, built once per shard in the worker process.

    ``build(**{name: setting for name in takes})`` returns the :class:`Renderer`; it gets exactly the
    settings named in ``takes``, which are:

    - ``device``: ``"auto"``, ``"cpu"`` or ``"cuda"`` (the stage's ``--device``; ``"auto"`` = CUDA when
      available);
    - ``body``: the split's :class:`pipeline.body.spec.BodySpec` (body-model, dense-parts and
      keypoint-regressor files). When a factory takes it, index.json records those files' sha256, so
      changing one re-renders.
    """

    build: Callable[..., Renderer]
    takes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.takes <= SETTINGS:
            raise ValueError(f"a renderer factory takes only {sorted(SETTINGS)}, not {sorted(self.takes)}")

    def __call__(self, device: str, body: BodySpec | None) -> Renderer:
        """The renderer for these settings (the ones not declared are not passed)."""
        given = {"device": device, "body": body}
        return self.build(**{name: given[name] for name in sorted(self.takes)})


class RendererSpecError(ValueError):
    """A ``--renderer`` spec that does not name a renderer; the message names the spec and why."""


def _smpl_iuv(device: str, body: BodySpec | None) -> Renderer:
    from pipeline.render.manifest_iuv import render_manifest_iuv

    return functools.partial(render_manifest_iuv, device=device, body=body)


# Built-in renderers by spec. The default's spec names its render function (the string index.json has
# always recorded); its factory adds the device and the body files.
BUILT_IN: dict[str, RendererFactory] = {
    DEFAULT_RENDERER: RendererFactory(_smpl_iuv, takes=frozenset({"device", "body"})),
}


def find_renderer(spec: str) -> Renderer | RendererFactory:
    """What ``spec`` names, checked but not built: a :class:`Renderer` or a :class:`RendererFactory`.

    Raises :class:`RendererSpecError` naming the spec when it is malformed, its module cannot be imported,
    the name is missing, or the object is neither a renderer nor a factory.
    """
    if isinstance(spec, str) and spec in BUILT_IN:
        return BUILT_IN[spec]
    if not isinstance(spec, str) or not _SPEC.fullmatch(spec):
        raise RendererSpecError(
            f"renderer {spec!r}: expected 'module:function' (dotted Python names, the function public)"
        )
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise RendererSpecError(
            f"renderer {spec!r}: module {module_name} cannot be imported ({err})"
        ) from None
    if not hasattr(module, attr):
        raise RendererSpecError(f"renderer {spec!r}: module {module_name} has no {attr}")
    found = getattr(module, attr)
    if isinstance(found, RendererFactory):
        return found
    if isinstance(found, type) or not callable(found):
        kind = "a class" if isinstance(found, type) else f"a {type(found).__name__}, not callable"
        raise RendererSpecError(
            f"renderer {spec!r}: {attr} is {kind}; a renderer is a function "
            "(rows, crop_transforms, crop_size) -> IUV maps or a RendererFactory (docs/design.md)"
        )
    return found


def load_renderer(spec: str, device: str = "auto", body: BodySpec | None = None) -> Renderer:
    """The renderer ``spec`` names, built for ``device`` and ``body`` when it is a factory that takes them
    (``body=None``: the factory's own default, e.g. the environment's body for the SMPL renderer)."""
    found = find_renderer(spec)
    if not isinstance(found, RendererFactory):
        return found
    built = found(device, body)
    if not callable(built):
        raise RendererSpecError(
            f"renderer {spec!r}: its factory returned {type(built).__name__}, not a renderer"
        )
    return built


def records_body(spec: str) -> bool:
    """Whether the renderer ``spec`` names takes the body files (so index.json records their digests)."""
    found = find_renderer(spec)
    return isinstance(found, RendererFactory) and "body" in found.takes
