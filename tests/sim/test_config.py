"""SimulationConfig: defaults are valid, bad values fail at construction naming the option."""

from __future__ import annotations

import pytest

from sonic_exatrkx.sim import SAMPLES, ConfigError, SimulationConfig


def test_defaults_are_the_seed_like_sample() -> None:
    cfg = SimulationConfig()
    assert cfg.sample == "hnl" and cfg.pileup == 0 and cfg.bfield == 2.0
    assert set(SAMPLES) == {"hnl", "ttbar-like", "minbias"}
    assert cfg.replace(pileup=200).pileup == 200


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"sample": "higgs"}, "sample"),
        ({"pileup": -1}, "pileup"),
        ({"pileup": float("nan")}, "pileup"),
        ({"noise_fraction": 1.0}, "noise_fraction"),
        ({"efficiency": 1.5}, "efficiency"),
        ({"seed": -3}, "seed"),
        ({"bfield": 0.0}, "bfield"),
        ({"material_scale": -1}, "material_scale"),
        ({"resolution": {"pixel": (0.01, 0.01)}}, "resolution"),
        ({"resolution": {"pixel": (0.01,), "short_strip": (1, 1), "long_strip": (1, 1)}},
         "resolution"),
        ({"hnl_mass": (0.1, 5.0)}, "hnl_mass"),
        ({"hnl_mass": (5.0, 1.0)}, "hnl_mass"),
        ({"hnl_prompt": (0, 3)}, "hnl_prompt"),
        ({"hnl_decay_length": 0}, "hnl_decay_length"),
        ({"geometry": "trackml"}, "geometry"),
    ],
)
def test_bad_option_is_named(changes: dict, option: str) -> None:
    with pytest.raises(ConfigError) as err:
        SimulationConfig(**changes)
    assert err.value.option == option
    assert str(err.value).startswith(option)


def test_unknown_sample_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="hnl, ttbar-like, minbias"):
        SimulationConfig(sample="ttbar")


def test_replace_rejects_unknown_options() -> None:
    with pytest.raises(ConfigError, match="pile_up"):
        SimulationConfig().replace(pile_up=3)
