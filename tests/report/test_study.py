"""Reading a study folder (report/study.py, report/cli.py): collecting, options, bad folders."""

from __future__ import annotations

import pytest

from synthetic_study import PNG_MAGIC, make_study, section


def test_cli_collects_missing_results_and_honours_options(tmp_path, capsys):
    from rerank_scaling.cli import main

    study = make_study(tmp_path / "study", write_results=False)
    out = tmp_path / "elsewhere" / "appendix.md"
    code = main(["report", str(study), "--out", str(out), "--fit-max-params", "4M", "--bootstrap", "40"])
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert (study / "results.parquet").exists()  # collected from the cells first
    text = out.read_text()
    assert "the table was collected from the cells for this report" in text
    assert "given with --fit-max-params (4M); 2 larger size(s) held out" in text
    forecasts = section(text, "### Forecasts of the held-out sizes", "## 4.")
    assert "`scratch-L4-H384`" in forecasts and "`scratch-L6-H512`" in forecasts
    assert (out.parent / "figures" / "size_ndcg10_cisi.png").read_bytes().startswith(PNG_MAGIC)
    assert not (study / "REPORT.md").exists()


@pytest.mark.parametrize("setup", ["empty", "missing", "cells-without-results"])
def test_folder_without_results_is_a_one_line_user_error(tmp_path, capsys, setup):
    from rerank_scaling.cli import main

    folder = tmp_path / "study"
    if setup != "missing":
        folder.mkdir()
    if setup == "cells-without-results":  # a cell that never finished: nothing to collect
        (folder / "cells" / "scratch-L1-H64__listwise__human__ball__s0").mkdir(parents=True)
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(folder) in err
    assert not (folder / "REPORT.md").exists()
