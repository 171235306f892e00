"""A grid on a cluster: per-size profiles as separate submissions, the sbatch a site gets, re-attaching to
running cells, [hardware] edits of a study, the dry run, cells pinned to GPUs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rerank_scaling.cli import main
from rerank_scaling.config import load_experiment
from rerank_scaling.config.experiment import Slurm
from rerank_scaling.errors import UserError
from rerank_scaling.grid.cli import check_study, run_grid
from rerank_scaling.grid.executors import run_local, run_submitit, run_task, submission_parameters, submissions
from rerank_scaling.rundir import RunFolder, StudyFolder

from tiny_experiment import TINY

REPO = Path(__file__).resolve().parents[2]
ONE_OBJECTIVE = TINY.replace('objectives = ["pointwise", "listwise"]', 'objectives = ["listwise"]')
PROFILES = ONE_OBJECTIVE + """
[hardware.sizes.L2-H128]
timeout_min = 7
mem = "2G"
gradient_checkpointing = true

[slurm]
account = "proj-42"
partition = "gpu"
qos = "high"
constraint = "a100"
mem = "16G"
setup = ["module load cuda/12.4", "source /opt/venv/bin/activate"]
extra = ["reservation=scaling"]
max_requeues = 5
"""


def test_per_size_profiles_are_separate_submissions_that_run(write_experiment, tmp_path):
    pytest.importorskip("submitit")
    exp = write_experiment(PROFILES, steps=2)
    cells = {c.size: c for c in load_experiment(exp).cells}
    assert cells["L2-H128"].gradient_checkpointing and not cells["L1-H64"].gradient_checkpointing
    submitted = []
    out = run_grid(exp, tmp_path / "study", executor="submitit-local",
                   on_submit=lambda params, runs: submitted.append((params, runs)))
    assert sorted((p["timeout_min"], tuple(r)) for p, r in submitted) == [
        (7, (cells["L2-H128"].run_id,)), (240, (cells["L1-H64"].run_id,))]
    assert [s.state for s in StudyFolder(out).states()] == ["done", "done"]
    jobs = json.loads((out / "submitit" / "jobs.json").read_text())
    assert set(jobs) == {c.run_id for c in cells.values()} and len({j["job_id"] for j in jobs.values()}) == 2


def test_the_sbatch_of_each_profile_carries_the_sites_keys(write_experiment, tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    bin_ = tmp_path / "bin"  # submitit's SLURM executor wants an srun on the PATH; its sbatch text needs no cluster
    bin_.mkdir()
    (bin_ / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_ / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    text = PROFILES.replace("batch_size = 2", "batch_size = 4").replace(
        "timeout_min = 7", 'timeout_min = 7\ndevices = 2\nstrategy = "fsdp"\nnodes = 2')
    experiment = load_experiment(write_experiment(text))
    groups = submissions([(c, None) for c in experiment.cells], experiment.slurm_of, "slurm")
    assert len(groups) == 2 and [g[1] for g in groups] == [5, 5]
    texts = {}
    for params, _, group in groups:
        executor = submitit.AutoExecutor(folder=str(tmp_path), cluster="slurm")
        executor.update_parameters(**params)
        texts[group[0][0].size] = executor._executor._make_submission_file_text("python run.py", "uid")
    small, large = texts["L1-H64"], texts["L2-H128"]
    for line in ("--account=proj-42", "--partition=gpu", "--qos=high", "--constraint=a100",
                 "--reservation=scaling", "module load cuda/12.4", "source /opt/venv/bin/activate"):
        assert line in small and line in large
    assert "--mem=16G" in small and "--time=240" in small and "--nodes=1" in small and "--gpus-per-node=1" in small
    assert "--mem=2G" in large and "--time=7" in large and "--nodes=2" in large
    assert "--ntasks-per-node=2" in large and "--gpus-per-node=2" in large  # one task per device, on each node
    gres = submission_parameters(Slurm(gres="gpu:a100:4"), "slurm", 4)
    assert gres["slurm_gres"] == "gpu:a100:4" and "gpus_per_node" not in gres


def test_a_rerun_driver_waits_for_a_running_cell_instead_of_submitting_it(write_experiment, tmp_path):
    pytest.importorskip("submitit")
    config = load_experiment(write_experiment(ONE_OBJECTIVE)).cells[0]
    run = RunFolder(tmp_path / "study" / "cells" / config.run_id)
    holder = subprocess.Popen([sys.executable, "-c", f"""
import json, time
from rerank_scaling.rundir import RunFolder
run = RunFolder({str(run.path)!r})
with run.lock():
    print("locked", flush=True)
    time.sleep(3)
    run.write_status({{"state": "done", "run": {config.run_id!r}, "by": "the other driver"}})
"""], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline().strip() == "locked"
    submitted, seen = [], {}
    run_submitit([(config, run)], tmp_path / "study", lambda r, s: seen.update({r: s}), cluster="local",
                 poll_s=0.2, on_submit=lambda params, runs: submitted.append(runs))
    holder.wait(30)
    assert submitted == [] and seen[config.run_id]["by"] == "the other driver"


def test_hardware_edits_of_a_study_are_allowed_and_changes_of_its_numbers_are_not(write_experiment, tmp_path):
    exp = write_experiment(ONE_OBJECTIVE)
    out = tmp_path / "study"
    out.mkdir()
    original = exp.read_text()
    (out / "experiment.toml").write_text(original)
    edited = original.replace("threads_per_worker = 1", "threads_per_worker = 2\nbatch_per_device = 1\n"
                                     "checkpoint_every_min = 30\n[hardware.sizes.L2-H128]\ndevices = 2\n"
                                     'strategy = "ddp"\n[slurm]\nmem = "8G"')
    exp.write_text(edited)
    check_study(out, load_experiment(exp))  # how cells run: the study goes on
    assert {c.grad_accumulation for c in load_experiment(exp).cells} == {1, 2}
    exp.write_text(edited.replace("lr = 1e-3", "lr = 2e-3"))
    with pytest.raises(UserError, match=r"lr 0.001 -> 0.002.*use another --out"):
        check_study(out, load_experiment(exp))
    exp.write_text(original.replace('sizes = ["L1-H64", "L2-H128"]', 'sizes = ["L1-H64"]'))
    with pytest.raises(UserError, match=r"cell scratch-L2-H128__listwise__human__b10__s0 is gone"):
        check_study(out, load_experiment(exp))


@pytest.mark.parametrize("text,message", [
    ("[hardware.sizes.L9-H1]\ndevices = 2", "[hardware.sizes.L9-H1]: 'L9-H1' is not a size of the grid"),
    ("[hardware.sizes.L1-H64]\nlr = 1.0", "unknown key 'lr' in [hardware.sizes.L1-H64]"),
    ("[hardware.sizes.L1-H64]\nbatch_per_device = 3", "batch_size (2) is not a multiple of devices x nodes x "
     "batch_per_device (1 x 3)"),
    ("[hardware.sizes.L1-H64]\ndevices = 0", "hardware.sizes.L1-H64.devices must be a positive integer, got 0"),
    ("[slurm]\nextra = [\"reservation\"]", "slurm.extra: 'reservation' is not key=value"),
    ("[slurm]\npartition = \"a\"\n[hardware.sizes.L1-H64]\nmax_requeues = -1",
     "hardware.sizes.L1-H64.max_requeues must be a non-negative integer, got -1"),
])
def test_bad_profiles_fail_with_one_line(write_experiment, text, message):
    with pytest.raises(UserError) as err:
        load_experiment(write_experiment(ONE_OBJECTIVE + text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_old_slurm_keys_still_read_and_clash_with_new_ones(write_experiment):
    old = ONE_OBJECTIVE.replace("workers = 1", 'workers = 1\nslurm_partition = "old"\nslurm_timeout_min = 9')
    exp = load_experiment(write_experiment(old))
    assert exp.slurm.partition == "old" and exp.slurm.timeout_min == 9
    with pytest.raises(UserError, match="give \\[slurm\\] partition or \\[hardware\\] slurm_partition"):
        load_experiment(write_experiment(old + '\n[slurm]\npartition = "new"'))


def test_dry_run_of_the_reference_grid_is_offline_and_prints_memory_per_size(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # nothing cached: shapes come from the ladder
    experiment = REPO / "experiments" / "paper-msmarco.toml"
    assert main(["grid", "run", str(experiment), "--dry-run", "--json", "--out", str(tmp_path / "study")]) == 0
    plan = json.loads(capsys.readouterr().out)
    by_size = {c["size"]: c for c in plan["cells"]}
    assert len(plan["cells"]) == 18 and plan["submissions"] == 2
    assert by_size["17m"]["memory_gb"] < by_size["150m"]["memory_gb"] < 80  # one 80 GB GPU each
    assert by_size["1b"]["devices"] == 4 and by_size["1b"]["strategy"] == "fsdp" and by_size["1b"]["memory_gb"] < 80
    assert by_size["400m"]["grad_accumulation"] == 2 and by_size["1b"]["micro_batch"] == 8
    assert 0.9e9 < by_size["1b"]["params"] < 1e9  # Ettin-1B's non-embedding N, from its shape
    assert by_size["1b"]["flops"] == pytest.approx(6 * by_size["1b"]["params"] * 32 * 11 * 256 * 20_000)
    assert not (tmp_path / "study").exists()  # trains and writes nothing
    assert main(["grid", "run", str(experiment), "--dry-run", "--gpu-memory", "40"]) == 0
    shown = capsys.readouterr().out
    assert "ettin-1b__listnet__human__ball__s0" in shown and "2 submissions" in shown


def test_local_cells_are_pinned_to_gpus_of_their_own(write_experiment, tmp_path):
    import dataclasses

    exp = load_experiment(write_experiment(ONE_OBJECTIVE, steps=2))
    study = StudyFolder(tmp_path / "study")
    cells = [(c, study.cell(c.run_id)) for c in exp.cells]
    huge = dataclasses.replace(exp.cells[0], devices=3, batch_size=3, strategy="ddp", seed=9)
    seen = {}
    run_local([*cells, (huge, study.cell(huge.run_id))], workers=2, on_done=lambda r, s: seen.update({r: s}),
              gpus=["3", "5"])
    visible = sorted(seen[c.run_id]["hardware"]["cuda_visible_devices"] for c, _ in cells)
    assert visible == ["3", "5"]  # each cell its own GPU (CPU here: torch ignores them)
    assert seen[huge.run_id]["reason"] == "needs 3 GPUs (devices); this machine lends 2"


def test_a_step_that_is_not_a_cell_runs_like_one(tmp_path):
    pytest.importorskip("submitit")
    assert run_task(sorted, ([3, 1, 2],), tmp_path, "local") == [1, 2, 3]
    assert run_task(sorted, ([3, 1, 2],), tmp_path, "submitit-debug", name="prepare") == [1, 2, 3]
