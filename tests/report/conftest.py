"""The synthetic study's report, built once for every report test that only reads it."""

import pytest

from synthetic_study import N_BOOT, make_study


@pytest.fixture(scope="session")
def report(tmp_path_factory):
    from rerank_scaling.report import build_report

    study = make_study(tmp_path_factory.mktemp("study") / "study")
    path = build_report(study, n_boot=N_BOOT)
    return study, path, path.read_text()
