"""Sweep specs: axes, ranges, product and zip, stable scenario ids, one-line errors for bad specs."""

from __future__ import annotations

import pytest

from dynaplan.errors import ValidationError
from dynaplan.sweep import SweepSpec, expand, read_spec, scenario_id
from dynaplan.sweep.expand import combinations


def _spec(**kw):
    return SweepSpec.model_validate({"kind": "replay", **kw})


def test_product_and_zip_expand_in_spec_order():
    s = _spec(axes={"policy": ["SinglePool", "ScaleFreq"], "load_scale": [1.0, 2.0, 3.0]})
    combos = combinations(s)
    assert len(combos) == 6 and combos[0] == {"policy": "SinglePool", "load_scale": 1.0}
    assert combos[1] == {"policy": "SinglePool", "load_scale": 2.0}  # last axis fastest
    z = _spec(mode="zip", axes={"load_scale": [1.0, 2.0], "seed": [3, 4]})
    assert combinations(z) == [{"load_scale": 1.0, "seed": 3}, {"load_scale": 2.0, "seed": 4}]


def test_ranges_by_num_and_by_step_include_stop():
    s = _spec(axes={"load_scale": {"start": 1.0, "stop": 2.0, "num": 3}, "slo_scale": {"start": 0.5, "stop": 0.8,
                                                                                      "step": 0.1}})
    assert s.axis_values("load_scale") == [1.0, 1.5, 2.0]
    assert s.axis_values("slo_scale") == [0.5, 0.6, 0.7, 0.8]  # 0.1 steps rounded, 0.8 included
    assert len(expand(s)) == 12


def test_scenario_id_is_a_hash_of_resolved_options_not_of_spec_layout():
    a = expand(_spec(base={"servers": 12}, axes={"policy": ["SinglePool", "ScaleFreq"]}))
    b = expand(_spec(axes={"servers": [12], "policy": ["ScaleFreq", "SinglePool"]}))
    assert {s.scenario_id for s in a} == {s.scenario_id for s in b}
    c = expand(_spec(axes={"policy": ["singlepool"], "servers": [12.0]}))  # same after validation
    assert c[0].scenario_id == next(s.scenario_id for s in a if s.options["policy"] == "SinglePool")
    assert a[0].options["window_s"] == 5.0  # defaults are part of the resolved options
    assert a[0].scenario_id == scenario_id("replay", a[0].options) and len(a[0].scenario_id) == 16
    other = expand(_spec(axes={"policy": ["SinglePool"], "servers": [13]}))
    assert other[0].scenario_id not in {s.scenario_id for s in a}


def test_identical_scenarios_are_one():
    s = _spec(mode="zip", axes={"policy": ["SinglePool", "SinglePool"], "seed": [0, 0]})
    assert len(expand(s)) == 1


@pytest.mark.parametrize("spec, words", [
    ({"kind": "replya"}, ["SweepSpec.kind", "unknown scenario kind 'replya'", "replay"]),
    ({"kind": "replay", "axes": {"growht": [1]}}, ["SweepSpec", "unknown option 'growht'", "load_scale"]),
    ({"kind": "replay", "base": {"policy": "SinglePool"}, "axes": {"policy": ["ScaleFreq"]}},
     ["'policy' is both in base and on an axis"]),
    ({"kind": "replay", "axes": {"seed": []}}, ["SweepSpec.axes", "'seed' has no values"]),
    ({"kind": "replay", "mode": "zip", "axes": {"seed": [1, 2], "servers": [3]}}, ["mode zip needs axes of one length"]),
    ({"kind": "replay", "mode": "diagonal"}, ["SweepSpec.mode"]),
    ({"kind": "replay", "metrics": ["energy"]}, ["unknown metric 'energy'", "energy_kwh"]),
    ({"kind": "replay", "axes": {"load_scale": {"start": 1, "stop": 2}}}, ["give one of step or num"]),
    ({"kind": "replay", "axes": {"seed": {"start": 0, "stop": 1e9, "step": 1}}}, ["MAX_SWEEP_SCENARIOS"]),
    ({"kind": "replay", "extra": 1}, ["SweepSpec.extra"]),
])
def test_bad_specs_fail_in_one_line_naming_the_field(spec, words):
    with pytest.raises(ValidationError) as err:
        SweepSpec.model_validate(spec)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_bad_scenario_values_fail_before_anything_runs_naming_the_scenario():
    s = _spec(axes={"servers": [4, -1]})
    with pytest.raises(ValidationError) as err:
        expand(s)
    msg = str(err.value)
    assert "\n" not in msg and "servers=-1" in msg and "ReplayScenario.servers" in msg, msg
    with pytest.raises(ValidationError, match="ReplayScenario.policy: must be one of"):
        expand(_spec(axes={"policy": ["SinglePool,ScaleFreq"]}))


def test_replay_scenarios_take_an_inventory_or_hardware_and_servers_and_checked_time_scales():
    s = expand(_spec(axes={"inventory": [{"h100-80gb": 8}, {"a100-80gb": 4, "h100-80gb": 4}]}))
    assert [sc.options["inventory"] for sc in s] == [{"h100-80gb": 8}, {"a100-80gb": 4, "h100-80gb": 4}]
    assert len({sc.scenario_id for sc in s}) == 2
    for values, words in (({"inventory": [{"h100-80gb": 8}], "servers": [3]}, "give inventory or servers, not both"),
                          ({"inventory": [{}]}, "ReplayScenario.inventory: give servers"),
                          ({"pool_epoch_s": [7.0]}, "pool_epoch_s: must be a whole multiple of window_s"),
                          ({"predictor_accuracy": [1.5]}, "ReplayScenario.predictor_accuracy"),
                          ({"idle_power": ["off"]}, "ReplayScenario.idle_power")):
        with pytest.raises(ValidationError) as err:
            expand(_spec(axes=values))
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_read_spec_toml_yaml_and_bad_files(tmp_path):
    (tmp_path / "prof.json").write_text("{}")
    (tmp_path / "s.toml").write_text('kind = "replay"\n[base]\nprofile = "prof.json"\n[axes]\nseed = [1, 2]\n')
    s = read_spec(tmp_path / "s.toml")
    assert s.base["profile"] == str((tmp_path / "prof.json").resolve()) and s.size() == 2  # relative to the spec
    (tmp_path / "s.yaml").write_text("kind: replay\naxes:\n  seed: [1, 2, 3]\n")
    assert read_spec(tmp_path / "s.yaml").size() == 3
    for name, text, words in (("bad.toml", "kind = \n", "cannot read"), ("bad.yaml", "kind: [\n", "cannot read"),
                              ("s.json", "{}", "expected a .toml"), ("list.yaml", "- 1\n", "expected a table"),
                              ("k.toml", 'kind = "replay"\nmode = 3\n', "k.toml: SweepSpec.mode")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ValidationError) as err:
            read_spec(tmp_path / name)
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(ValidationError, match="no such file"):
        read_spec(tmp_path / "missing.toml")
