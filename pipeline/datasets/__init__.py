"""Dataset sources, fetching, and ingest of every dataset format into one Parquet manifest schema.

Modules: ``sources`` (manifests/sources/*.yaml loader), ``download`` (resumable verified fetch), ``schema``
(the manifest contract: MANIFEST_SCHEMA, read_manifest, validate_manifest), ``rows`` (shared row checks),
and one parser per format: ``spin_npz``, ``pw3d``, ``up3d``, ``coco``, ``humandata`` (mmhuman3d's HumanData,
with the joint-name tables of ``keypoint_names``); ``ingest`` ties them together. Pickled content is read
only through :mod:`pipeline.safe_pickle`. Design: docs/ingest.md.
"""

from .schema import MANIFEST_SCHEMA, SCHEMA_VERSION, ManifestError, read_manifest, validate_manifest

__all__ = ["MANIFEST_SCHEMA", "SCHEMA_VERSION", "ManifestError", "read_manifest", "validate_manifest"]
