"""Session fixtures shared by several test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smpl_standin(tmp_path_factory):
    """The SMPL-topology stand-in (tests/fixtures_data/smpl_standin.py) written in the real formats.

    Returns (StandIn, files) with files: "smpl" (folder of the three gendered .pkl files), "uv"
    (UV_Processed.mat), "h36m" (J_regressor_h36m.npy), "extra" (SPIN's J_regressor_extra.npy)."""
    from tests.fixtures_data import smpl_standin as standin

    folder = tmp_path_factory.mktemp("smpl")
    body = standin.build_standin()
    files = {
        "smpl": standin.write_smpl_folder(folder / "smpl", body),
        "uv": standin.write_uv_processed(folder / "UV_Processed.mat", body),
        **standin.write_regressors(folder, body),
    }
    return body, files
