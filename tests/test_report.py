"""report.md and its plots, from the saved results only: a seeds study with a replicate forced to
diverge (an injected NaN in pretrained model 1), a running/killed workdir, a failing section."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxeval import config as config_lib
from jaxeval import reporting
from jaxeval.studies import base, seeds

REPO = Path(__file__).resolve().parents[1]


def _config():
    c = config_lib.base_config()
    c.model.hidden = (32,)
    c.model.recon_hidden = 32
    c.pretrain.epochs = 1
    c.pretrain.num_seeds = 2
    c.finetune.epochs = 2
    c.num_seeds = 3
    c.chunk_width = 4
    return c


def _poisoned_pretrain_sweep(*args, **kwargs):
    """The real pretraining sweep, then a NaN injected into one weight of pretrained model 1."""
    out = _REAL_PRETRAIN(*args, **kwargs)
    enc = out["encoder"]
    leaf = next(iter(enc.values()))
    while isinstance(leaf, dict):
        leaf = next(iter(leaf.values()))
    leaf[(1,) + (0,) * (leaf.ndim - 1)] = np.nan  # numpy outputs of sweep.run: modified in place
    return out


_REAL_PRETRAIN = base.pretrain_sweep


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(base, "pretrain_sweep", _poisoned_pretrain_sweep)
        result = seeds.run(_config(), workdir=workdir, log=None)
    return result, workdir


@pytest.mark.xdist_group("report")
def test_diverged_replicates_are_listed_with_their_step_and_excluded(study):
    result, workdir = study
    s = result.summary
    # replicates 3, 4, 5 finetune pretrained model 1: NaN logits at the first step, in both modes
    for mode in ("full", "probe"):
        assert result.finetune[mode]["train"]["diverged_step"].tolist() == [-1, -1, -1, 0, 0, 0]
        for name in ("accuracy", "nll"):
            assert s["modes"][mode][name]["n"] == 3 and s["modes"][mode][name]["excluded"] == [3, 4, 5]
            kept = result.finetune[mode]["metrics"][name][:3]
            assert s["modes"][mode][name]["mean"] == pytest.approx(float(np.mean(kept.astype(np.float64))))
    assert s["divergence"]["count"] == 6 and s["divergence"]["rule"] == base.DIVERGENCE_RULE
    assert s["divergence"]["sweeps"]["finetune_full"][0] == {"replicate": 3, "step": 0, "pretrain": 1, "init": 0,
                                                             "data": 0, "dropout": 0}
    text = seeds.format_summary(s)
    assert "diverged replicates: 6 -- excluded: a replicate whose training diverged" in text
    assert "finetune_probe: replicate 5 (pretrain 1, init 2, data 2, dropout 2) diverged at step 0" in text
    rows = reporting.read_csv(workdir / "replicates.csv")
    assert {(r["replicate"], r["diverged_step"]) for r in rows if r["mode"] == "full"} == {
        ("0", "-1"), ("1", "-1"), ("2", "-1"), ("3", "0"), ("4", "0"), ("5", "0")}


@pytest.mark.xdist_group("report")
def test_report_has_tables_and_a_real_plot(study):
    _, workdir = study
    md = (workdir / "report.md").read_text()
    for needle in ("# seeds study: report", "## Status", "**complete**", "## Provenance", "| config hash |",
                   "| XLA flags |", "| PRNG | threefry2x32 |", "| pretrain_params |", "## Diverged replicates",
                   "| finetune_full | 3 | 0 | pretrain=1, init=0, data=0, dropout=0 |",
                   "## Seeds: results per mode and metric", "| mode | metric | n | mean | std | 95% CI |",
                   "| full | accuracy | 3 |", "| probe | ece | 3 |", "3, 4, 5 |",
                   "![per-seed distributions](seeds_distributions.png)"):
        assert needle in md, needle
    png = workdir / "seeds_distributions.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 30_000
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[0] > 500 and img.shape[1] > 1000
    assert np.std(img[..., :3]) > 0.05  # not a blank canvas
    # the table's numbers are the saved summary's
    summary = json.loads((workdir / "summary.json").read_text())
    assert f"| full | accuracy | 3 | {summary['modes']['full']['accuracy']['mean']:.4f} |" in md


@pytest.mark.xdist_group("report")
def test_report_cli_remakes_the_same_report(study, tmp_path):
    _, workdir = study
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)
    (copy / "report.md").unlink()
    (copy / "seeds_distributions.png").unlink()
    r = subprocess.run([sys.executable, "-m", "jaxeval.report", "--workdir", str(copy)], capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (copy / "report.md").read_text().replace("`copy`", "`W`") == \
        (workdir / "report.md").read_text().replace(f"`{workdir.name}`", "`W`")
    assert (copy / "seeds_distributions.png").read_bytes() == (workdir / "seeds_distributions.png").read_bytes()
    r = subprocess.run([sys.executable, "-m", "jaxeval.report", "--workdir", str(tmp_path / "nothing")],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 1 and "has no manifest.json: not a study workdir" in r.stderr


@pytest.mark.xdist_group("report")
def test_running_or_failed_workdir_is_reported_as_such(study, tmp_path):
    _, workdir = study
    copy = tmp_path / "killed"
    shutil.copytree(workdir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    for status, needle in (("running", "**running** -- the study has not completed"),
                           ("failed", "**failed**: MemoryError: boom")):
        (copy / "manifest.json").write_text(json.dumps({**manifest, "status": status, "failure": "MemoryError: boom"}))
        md = reporting.write_report(copy).read_text()
        assert needle in md and "## Provenance" in md
        assert "## Seeds" not in md and "## Diverged" not in md  # stale results are not shown


def test_failing_study_section_never_fails_the_study(tmp_path, monkeypatch, capsys):
    def broken(workdir):
        raise KeyError("no such column")

    monkeypatch.setattr(seeds, "report", broken)
    compute = lambda cfg, log: base.Output(summary={"x": 1}, manifest={}, files={})  # noqa: E731
    out = base.run_in_workdir("seeds", _config(), compute, workdir=tmp_path, log=None)
    assert out.manifest["status"] == "complete"
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "complete"
    assert "the study is complete but its report failed: RuntimeError" in capsys.readouterr().err
    md = (tmp_path / "report.md").read_text()
    assert "## seeds section failed" in md and "KeyError" in md and "## Provenance" in md
