"""``--set KEY=VALUE``: dotted keys, YAML values, precedence, and the same validation as a config file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import load_config, parse_setting
from harness.errors import ConfigError


@pytest.mark.parametrize(("text", "expected"), [
    ("teacher.epochs=40", {"teacher": {"epochs": 40}}),
    ("teacher.lr=1e-3", {"teacher": {"lr": 0.001}}),
    ("seeds=[0]", {"seeds": [0]}),
    ("teacher.augment=true", {"teacher": {"augment": True}}),
    ("distill={alpha: 1}", {"distill": {"alpha": 1}}),
    ("strategy_params.x.tau='1e-3'", {"strategy_params": {"x": {"tau": "1e-3"}}}),
    ("dataset_options.d.root=/data/a=b", {"dataset_options": {"d": {"root": "/data/a=b"}}}),
    (" teacher . epochs = 3", {"teacher": {"epochs": 3}}),
])
def test_a_setting_is_a_dotted_key_and_a_yaml_value(text: str, expected: dict):
    assert parse_setting(text) == expected
    assert type(parse_setting("teacher.lr=1e-3")["teacher"]["lr"]) is float


def test_settings_go_over_the_file_and_under_the_dedicated_flags(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("seeds: [4, 5]\nteacher: {epochs: 3, lr: 0.1}\nstrategies: [hard]\n")
    config = load_config(path, {"seeds": "7"}, ["teacher.epochs=40", "seeds=[0]", "strategies=[it]",
                                                "strategies=[iee]", "student={epochs: 2}"])
    assert config.teacher.epochs == 40 and config.teacher.lr == 0.1
    assert config.seeds == (7,) and config.strategies == ("iee",)
    assert config.student.epochs == 2 and config.student.batch_size == 32


def test_free_form_sections_take_any_depth():
    config = load_config(None, None, ["strategy_params.iee.low=0.4", "strategy_params.iee.rule.opts.k=[1, 2]",
                                      "dataset_options.demo-phases.num_videos=5"])
    assert config.strategy_params == {"iee": {"low": 0.4, "rule": {"opts": {"k": [1, 2]}}}}
    assert config.dataset_options == {"demo-phases": {"num_videos": 5}}


def test_every_bad_setting_is_listed_under_its_argument():
    with pytest.raises(ConfigError) as error:
        load_config(None, None, ["teacher.epoch=3", "teacher.epochs=2", "seeds=[-1]", "strategy_params.iee=3"])
    assert str(error.value).splitlines() == [
        "--set 'teacher.epoch=3': unknown key 'teacher.epoch'; did you mean 'teacher.epochs'?",
        "--set 'seeds=[-1]': seeds: expected a non-empty list of integers >= 0 (or a comma-separated string), "
        "found [-1]",
        "--set 'strategy_params.iee=3': strategy_params: expected a mapping of name -> mapping of settings, "
        "found {'iee': 3}",
    ]


@pytest.mark.parametrize(("text", "problem"), [
    ("teacher.epochs", "expected KEY=VALUE with a dotted KEY"),
    ("=3", "expected KEY=VALUE with a dotted KEY"),
    ("teacher..epochs=3", "expected KEY=VALUE with a dotted KEY"),
    ("teacher.=3", "expected KEY=VALUE with a dotted KEY"),
    ("seeds=[0, 1", "VALUE is not valid YAML: expected ',' or ']', but got '<stream end>'"),
])
def test_a_malformed_setting_names_the_argument(text: str, problem: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture):
    with pytest.raises(ConfigError, match="^" + re.escape(f"--set '{text}': {problem}")):
        parse_setting(text)
    for command in (["run"], ["sweep", "--dataset", "demo-phases"]):
        assert main([*command, "--out", str(tmp_path / "out"), "--set", "image_size=16", "--set", text]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --set '{text}': {problem}") and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_help_gives_the_precedence(capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--set KEY=VALUE" in help_text
    assert "defaults < --config < --set (a later one wins) < the dedicated flags such as --seeds" in help_text


def test_bench_run_uses_the_settings_and_records_them(tmp_path: Path):
    out = tmp_path / "out"
    assert main(["run", "--out", str(out), "--quiet", "--strategies", "hard", "--set", "teacher.epochs=2",
                 "--set", "seeds=[0]", "--set", "strategies=[best-val]", "--set", "datasets=[demo-phases]",
                 "--set", "image_size=16", "--set", "student.epochs=1", "--set", "teacher.lr=1e-3",
                 "--set", "dataset_options.demo-phases.num_videos=5"]) == 0
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["teacher"]["epochs"] == 2 and config["teacher"]["lr"] == 0.001 and config["seeds"] == [0]
    assert config["strategies"] == ["hard"] and config["datasets"] == ["demo-phases"]
    assert config["dataset_options"] == {"demo-phases": {"num_videos": 5}}
    histories = list((out / "jobs" / "teacher").glob("*/history/history.json"))
    assert histories and all(len(json.loads(path.read_text())["epochs"]) == 2 for path in histories)
