"""The ``critical`` config group: each option puts its activation at the edge of chaos (χ1 = 1,
``mlplab.theory``) and, where it sets ``data.q0``, the first layer at the fixed point q*."""

from pathlib import Path

import pytest
import yaml

from mlplab import theory

CONF = Path(__file__).resolve().parents[1] / "conf" / "critical"
Q_STAR = {"tanh": 1 / 64, "tanh_q1": 1.0}  # the fixed points the options are named for


def option(name: str) -> dict:
    conf = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    activation = next(d["override /activation"] for d in conf["defaults"] if "override /activation" in d)
    return {"activation": activation, **conf["init"], "q0": conf.get("data", {}).get("q0")}


@pytest.mark.parametrize("name", sorted(p.stem for p in CONF.glob("*.yaml")))
def test_each_option_is_critical_and_starts_at_its_fixed_point(name):
    o = option(name)
    assert theory.chi1(o["activation"], o["sigma_w"], o["sigma_b"]) == pytest.approx(1.0, abs=1e-8)
    if o["q0"] is not None:
        q = theory.q_star(o["activation"], o["sigma_w"], o["sigma_b"])
        assert o["sigma_w"] ** 2 * o["q0"] + o["sigma_b"] ** 2 == pytest.approx(q, rel=1e-8)  # q^1 = q*
        assert q == pytest.approx(Q_STAR.get(name, q), rel=1e-8)


def test_the_group_is_composed_into_a_run(tmp_path):
    from hydra import compose, initialize_config_dir

    from mlplab.config import to_spec

    with initialize_config_dir(config_dir=str(CONF.parent), version_base="1.3"):
        spec = to_spec(compose("config", overrides=["critical=tanh", "depth=3"]))
    assert (spec.activation, spec.sigma_w, spec.input_q0) == ("tanh", 1.0151637852, 0.0151571829)
