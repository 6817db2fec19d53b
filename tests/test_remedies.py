"""The remedies study (mlplab.analysis.studies.remedies): labels, exact twins, verdicts with
known answers, its report section, and the remedies as conf/remedy composes them."""

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from synthetic import LOG_EVERY, accuracy_curve, make_results
from test_config import cli, make

import mlplab
from mlplab.analysis import load, report, select
from mlplab.analysis.plots import MIN_TEXT_PX, text_px_in_report
from mlplab.analysis.studies import remedies as study
from mlplab.analysis.studies.blog import sections as blog_sections
from mlplab.analysis.studies.remedies import arms
from mlplab.analysis.studies.remedies import compare as remedies
from mlplab.analysis.studies.remedies.sections import SECTION
from mlplab.analysis.verdicts import MIN_SEEDS
from mlplab.config import to_spec

# remedy -> config fields of a run carrying it, and the plain twin's
ARMS = {
    "plain": {},
    "residual": {"residual": True},
    "batch norm": {"norm": "batch"},
    "layer norm": {"norm": "layer"},
    "He init": {"init": "he_normal"},
    "weight decay": {"weight_decay": 0.001},
    "norm clipping": {"clip": "norm"},
    "adam": {"optim": "adam", "lr": 0.001},  # Adam at its own default lr, the twin at SGD's 0.5
}


def remedy_data(ratio: dict, speed: dict, depths=(8, 16)):
    """Sigmoid runs per remedy: first-to-last ratio ``ratio[remedy] ** depth`` (a little different
    per seed) and accuracy rising 0.1 every ``speed[remedy]`` logged steps."""
    runs, curves, profiles = [], {}, {}
    for name, fields in ARMS.items():
        for depth in depths:
            for seed in range(MIN_SEEDS):
                rid = f"{name}-{depth}-{seed}"
                runs.append({"run_id": rid, "depth": depth, "seed": seed, "loss": "softmax_ce", **fields})
                curves[rid] = accuracy_curve(speed[name] * (1 + 0.02 * seed), n=40)
                per_layer = ratio[name] * (1 + 0.01 * seed)
                g = per_layer ** np.arange(depth, -1, -1.0)
                profiles[rid] = {0: g, LOG_EVERY * 39: g}
    return make_results(runs, curves, profiles)


def test_labels_name_the_one_remedy_a_run_carries():
    pr = remedies.per_run(remedy_data({k: 0.5 for k in ARMS}, {k: 3 for k in ARMS}))
    assert set(pr["remedy"]) == set(ARMS)
    both = next(pr.head(1).assign(residual=True, norm="batch").itertuples(index=False))
    assert remedies.label(both) == "several"


def test_pairs_are_exact_twins_by_seed():
    pr = remedies.per_run(remedy_data({k: 0.5 for k in ARMS}, {k: 3 for k in ARMS}))
    p = remedies.pairs(pr, "batch norm")
    assert len(p) == 2 * MIN_SEEDS
    assert (p["run_id_a"].str.startswith("batch norm") & p["run_id_b"].str.startswith("plain")).all()
    assert (p["run_id_a"].str[-1] == p["run_id_b"].str[-1]).all()
    # a residual run is never a batch-norm run's twin
    assert not p["run_id_b"].str.startswith("residual").any()
    assert len(remedies.pairs(pr, "weight decay")) == 2 * MIN_SEEDS  # any positive decay against 0


def test_adam_pairs_with_its_sgd_twin_by_seed_despite_its_own_learning_rate():
    pr = remedies.per_run(remedy_data({k: 0.5 for k in ARMS}, {k: 3 for k in ARMS}))
    p = remedies.pairs(pr, "adam")
    assert len(p) == 2 * MIN_SEEDS
    assert (p["run_id_a"].str.startswith("adam") & p["run_id_b"].str.startswith("plain")).all()
    assert (p["run_id_a"].str[-1] == p["run_id_b"].str[-1]).all()  # the same seed
    assert set(p["lr_a"]) == {0.001} and set(p["lr_b"]) == {0.5}  # each arm's own lr, kept
    # any other difference still breaks the match
    assert remedies.pairs(pr.assign(width=np.where(pr["remedy"] == "adam", 64, 32)), "adam").empty


def test_an_unrelated_learning_rate_still_breaks_a_twin_match():
    pr = remedies.per_run(remedy_data({k: 0.5 for k in ARMS}, {k: 3 for k in ARMS}))
    slower = pr.assign(lr=np.where(pr["remedy"] == "batch norm", 0.1, pr["lr"]))
    assert remedies.pairs(slower, "batch norm").empty  # lr is no part of batch norm
    assert len(remedies.pairs(slower, "adam")) == 2 * MIN_SEEDS
    # twins() itself: ignore leaves a field out of the match, and only when asked
    assert select.twins(slower, "norm", "batch", "none").empty
    p = select.twins(slower, "norm", "batch", "none", ignore=("lr",))
    assert len(p) == 2 * MIN_SEEDS and set(p["lr_a"]) == {0.1} and set(p["lr_b"]) == {0.5}
    plain = select.twins(pr, "norm", "batch", "none")
    assert plain.equals(select.twins(pr, "norm", "batch", "none", ignore=()))
    assert "lr" in plain and "lr_a" not in plain  # without ignore: the shared lr, as before


def test_verdicts_follow_the_data():
    ratio = {
        "plain": 0.3,
        "residual": 0.95,
        "batch norm": 0.9,
        "layer norm": 0.2,
        "He init": 0.3,
        "weight decay": 0.3,
        "norm clipping": 0.3,
        "adam": 0.3,
    }
    speed = {
        "plain": 4,
        "residual": 2,
        "batch norm": 2,
        "layer norm": 7,
        "He init": 4,
        "weight decay": 4,
        "norm clipping": 4,
        "adam": 2,
    }
    v = remedies.verdicts(remedy_data(ratio, speed)).set_index(["remedy", "claim"])["verdict"]
    for claim in remedies.CLAIMS:
        assert v[("residual", claim)] == "reproduced"
        assert v[("batch norm", claim)] == "reproduced"
        assert v[("layer norm", claim)] == "not reproduced"
    # no effect at all: the interval never excludes it
    assert v[("He init", "toward 1 at initialisation")].startswith("not enough data")
    # remedies the folder does not hold are not tested
    assert v[("Xavier init", "faster")].startswith("not tested (no Xavier init run")
    assert v[("relu", "toward 1 at initialisation")].startswith("not tested")
    # clipping, decay and the optimiser change nothing before the first update
    for remedy in ("norm clipping", "weight decay", "adam"):
        assert v[(remedy, "toward 1 at initialisation")] == (
            "not tested (it acts only during training: at step 0 the run is its twin)"
        )
    assert v[("adam", "faster")] == "reproduced"
    assert v[("adam", "toward 1 after training")].startswith("not enough data")  # the same ratio as its twin


def test_a_pair_where_neither_run_reaches_the_target_says_nothing():
    speed = {k: 1000 for k in ARMS}  # nobody reaches the target
    speed["plain"] = 3  # ... but the plain twin: it sets the target
    c = remedies.remedy_cases(remedy_data({k: 0.5 for k in ARMS}, speed))
    faster = c[c["claim"] == "faster"]
    assert set(faster["holds"].dropna()) == {False}  # the plain twin is faster wherever a pair can say
    speed = {k: 1000 for k in ARMS}
    v = remedies.verdicts(remedy_data({k: 0.5 for k in ARMS}, speed)).set_index(["remedy", "claim"])["verdict"]
    # the target (0.9 × the best median final accuracy) is reached by no run: nothing to compare
    assert v[("residual", "faster")].startswith("not tested (no residual run or plain twin that reaches the target")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("results") / "remedies"
    for fields in ({}, {"residual": True}, {"norm": "batch"}):
        for seed in range(MIN_SEEDS):
            mlplab.run(
                mlplab.RunSpec(depth=3, width=8, epochs=2, n_samples=200, seed=seed, **fields), root, sweep="remedies"
            )
    return root


@pytest.fixture(scope="module")
def reported(folder):
    """``report.write_report`` on the folder: (its files, the remedies section it is built with,
    as the study's ``sections`` returned it to the report)."""
    original, sections = study.STUDY.sections, []

    def recorded(results, figures):
        sections.append(original(results, figures))
        return sections[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(study.STUDY, "sections", recorded)
        paths = report.write_report(folder)
    assert len(sections) == 1
    return paths, sections[0]


def test_report_section_on_a_real_sweep(reported):
    blocks = reported[1]
    assert blocks[0].body == SECTION
    figs = [b.body for b in blocks if b.kind == "figure"]
    assert len(figs) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in figs)
    assert all(text_px_in_report(p) >= MIN_TEXT_PX for p in figs)
    grid = next(b.body for b in blocks if b.kind == "table")
    assert list(grid["remedy"]) == ["residual", "batch norm"]
    assert not any(b.kind == "p" and "bring along" in b.body for b in blocks)  # neither brings along a field
    assert set(grid.columns) == {"remedy", *remedies.CLAIMS}
    assert grid.drop(columns="remedy").map(lambda t: isinstance(t, str) and len(t) > 0).all().all()


def test_no_section_without_remedies_beyond_the_blog_claims(tmp_path):
    root = tmp_path / "blog"
    for act in ("sigmoid", "relu"):
        for seed in range(2):
            mlplab.run(
                mlplab.RunSpec(depth=2, width=8, epochs=1, n_samples=200, seed=seed, activation=act), root, sweep="b"
            )
    assert not study.STUDY.applies(load(root))
    assert "## " + SECTION not in report.write_report(root)["md"].read_text()


REMEDY_FILES = sorted(p.stem for p in (arms.conf_folder() / "remedy").glob("*.yaml") if p.stem != "plain")


def test_every_remedy_file_is_a_remedy_of_the_study():
    assert len(REMEDY_FILES) >= 9 and len(arms.REMEDIES) == len(REMEDY_FILES) + 1  # and relu, an activation
    assert arms.REMEDIES["relu"] == arms.Remedy("activation", "relu", ("sigmoid", "tanh"))
    # Adam brings along its own learning rate (conf/optim/adam.yaml sets train.lr)
    assert arms.REMEDIES["adam"] == arms.Remedy("optim", "adam", ("sgd",), ("lr",), ((0.001, 0.5),))
    assert all(not r.along for name, r in arms.REMEDIES.items() if name != "adam")


@pytest.fixture
def conf(tmp_path):
    """A copy of the conf folder, to add remedy and option files to."""
    shutil.copytree(arms.conf_folder(), tmp_path / "conf")
    return tmp_path / "conf"


def remedy_file(conf, name: str, *lines: str):
    (conf / "remedy" / f"{name}.yaml").write_text("\n".join(["# @package _global_", *lines, ""]))


def test_an_option_brings_along_what_it_sets_outside_its_group_where_it_differs(conf):
    remedy_file(conf, "decoupled", "defaults:", "  - override /optim: adamw")
    # an option of the default rule at the plain lr: nothing comes along
    (conf / "optim" / "same_lr.yaml").write_text(
        "# @package _global_\ndefaults:\n  - sgd\noptim:\n  name: momentum\ntrain:\n  lr: 0.5\n"
    )
    remedy_file(conf, "heavy_ball", "defaults:", "  - override /optim: same_lr")
    found = arms.remedies(conf)
    assert found["decoupled"] == arms.Remedy(
        "optim", "adamw", ("sgd",), ("lr", "weight_decay"), ((0.001, 0.5), (0.01, 0.0))
    )
    assert found["heavy ball"] == arms.Remedy("optim", "momentum", ("sgd",))
    assert found["adam"] == arms.REMEDIES["adam"]


def test_a_remedy_file_still_changes_one_field(conf):
    remedy_file(conf, "adam", "defaults:", "  - override /optim: adam", "norm: batch")
    with pytest.raises(
        ValueError, match=r"adam.yaml: a remedy changes one field of the plain network, not \['norm', 'optim.name'\]"
    ):
        arms.remedies(conf)


def test_a_group_option_of_another_package_is_refused(conf):
    (conf / "optim" / "adam.yaml").write_text("# @package train\nlr: 0.001\n")
    with pytest.raises(
        ValueError, match=r"adam.yaml: @package train: a group option is in its group's package or _global_"
    ):
        arms.remedies(conf)


@pytest.mark.parametrize("remedy", REMEDY_FILES)
def test_each_remedy_config_changes_one_field_of_the_plain_twin(remedy):
    """The study reads conf/remedy/<remedy>.yaml with PyYAML; Hydra composes it: the same field,
    the same value, against the same plain twin."""
    arm = arms.REMEDIES[arms.LABELS.get(remedy, remedy.replace("_", " "))]
    plain, cured = to_spec(make(["remedy=plain"])), to_spec(make([f"remedy={remedy}"]))
    twin = getattr(plain, arm.field)
    assert getattr(cured, arm.field) == arm.value and ("none" if twin is None else twin) in arm.twin  # norm: "none"
    differ = {k for k in plain.__dataclass_fields__ if getattr(plain, k) != getattr(cured, k)}
    assert set(arm.along) <= differ  # what the remedy brings along (adam: its lr) does differ
    assert differ <= {arm.field, *arm.along, "sigma_b"}  # He and Xavier set b = 0 as their papers do
    row = next(pd.DataFrame([cured.__dict__]).itertuples(index=False))
    assert remedies.label(row) != "plain"


def test_the_report_of_a_remedies_folder_is_framed_by_its_study(reported):
    md = reported[0]["md"].read_text()
    # the studies' parts under their titles, their own headings one level down
    assert f"\n### {blog_sections.BRIEF}\n" in md and f"\n## {SECTION}\n" in md
    assert not any(f"\n### {t}\n" in md for t in blog_sections.SECTIONS)  # no full blog framing
    assert "## Edge of chaos" not in md and "## Nielsen" not in md


@pytest.fixture(scope="module")
def adam_folder(tmp_path_factory):
    """Tiny real runs: Adam at its default lr and the plain SGD twins, seed by seed; and both at
    another rate, which the pairs leave out."""
    root = tmp_path_factory.mktemp("results") / "remedies"
    for fields in ({}, {"optim": "adam", "lr": 0.001}, {"lr": 0.1}, {"optim": "adam", "lr": 0.01}):
        for seed in range(MIN_SEEDS):
            mlplab.run(
                mlplab.RunSpec(depth=3, width=8, epochs=2, n_samples=200, seed=seed, **fields), root, sweep="remedies"
            )
    return root


def test_adam_runs_are_paired_and_judged_against_their_sgd_twins(adam_folder):
    res = load(adam_folder)
    pr = remedies.per_run(res)
    assert sorted(pr["remedy"].value_counts().items()) == [("adam", 2 * MIN_SEEDS), ("plain", 2 * MIN_SEEDS)]
    p = remedies.pairs(pr, "adam")
    assert sorted(p["seed"]) == list(range(MIN_SEEDS))  # one pair per seed: adam at 0.001, sgd at 0.5
    assert set(p["lr_a"]) == {0.001} and set(p["lr_b"]) == {0.5}
    assert np.allclose(p["w_init_a"], p["w_init_b"])  # at step 0 an Adam run is its twin
    c = remedies.remedy_cases(res)
    assert set(c["remedy"]) == {"adam"} and "toward 1 after training" in set(c["claim"])
    assert "toward 1 at initialisation" not in set(c["claim"])  # nothing to compare at step 0
    v = remedies.verdicts(res).set_index(["remedy", "claim"])["verdict"]
    assert v[("adam", "toward 1 at initialisation")].startswith("not tested (it acts only during training")
    assert not v[("adam", "toward 1 after training")].startswith("not tested")
    assert study.STUDY.applies(res)
    # the section says what comes along with the remedy, with both arms' values
    said = [b.body for b in study.STUDY.sections(res, {}) if b.kind == "p"]
    assert any(t.endswith("paired on every other field: adam: lr 0.001 (twin 0.5).") for t in said)


def test_remedy_adam_on_the_command_line_is_adam_at_its_own_learning_rate(tmp_path):
    p = cli("remedy=adam", "--cfg", "job", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    cfg = yaml.safe_load(p.stdout)
    assert cfg["optim"]["name"] == "adam" and cfg["train"]["lr"] == 0.001
    spec = to_spec(make(["remedy=adam"]))
    assert (spec.optim, spec.lr) == ("adam", 0.001) and remedies.label(spec) == "adam"


def test_twins_are_the_same_seeds_runs_whatever_the_order_of_the_runs():
    """A second check of the match by seed, without the run ids' naming: each pair's two runs
    have the same seed in the per-run table, and the pairs are the same when the runs come in
    another order (a match by position would pair other seeds)."""
    pr = remedies.per_run(remedy_data({k: 0.5 for k in ARMS}, {k: 3 for k in ARMS}))
    seed = pr.set_index("run_id")["seed"]
    for remedy in ("batch norm", "residual", "adam"):
        p = remedies.pairs(pr, remedy)
        assert len(p) == 2 * MIN_SEEDS
        assert (seed[p["run_id_a"]].to_numpy() == seed[p["run_id_b"]].to_numpy()).all()
        shuffled = remedies.pairs(pr.sample(frac=1.0, random_state=3).reset_index(drop=True), remedy)
        assert set(zip(shuffled["run_id_a"], shuffled["run_id_b"])) == set(zip(p["run_id_a"], p["run_id_b"]))
