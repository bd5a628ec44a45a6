"""Configuration layering and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.config import load_config
from harness.errors import ConfigError


def test_defaults_are_the_demo():
    config = load_config()
    assert config.datasets == ("all",) and config.strategies == ("all",)
    assert config.seeds == (0, 1, 2)


def test_file_then_command_line(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("seeds: [4, 5]\nteacher: {epochs: 3}\nstrategy_params: {it: {low: 0.4}}\n")
    config = load_config(path, {"seeds": "7,8", "strategies": "hard,it"})
    assert config.seeds == (7, 8)
    assert config.strategies == ("hard", "it")
    assert config.teacher.epochs == 3 and config.teacher.batch_size == 32
    assert config.strategy_params == {"it": {"low": 0.4}}


def test_unknown_key_names_the_file_and_suggests(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher: {epoch: 3}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'teacher.epoch'; did you mean 'teacher.epochs'\?"):
        load_config(path)


def test_invalid_yaml_and_values(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("seeds: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("teacher: {epochs: 0}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: teacher.epochs: expected an integer >= 1, found 0$"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_demo_config_file_matches_the_builtin_defaults():
    demo = Path(__file__).resolve().parent.parent / "benchmarks" / "demo.yaml"
    assert load_config(demo) == load_config()


def test_ci_runs_the_readme_test_command():
    root = Path(__file__).resolve().parent.parent
    readme, ci = (root / "README.md").read_text(), (root / ".ci" / "run").read_text()
    test_command = next(line for line in readme.splitlines() if "pip install -e '.[test]'" in line)
    assert test_command.strip() in ci
    assert "bench run --datasets all --strategies all" in readme


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_yaml_exponents_are_floats_everywhere_and_integers_stay_integers(tmp_path: Path):
    path = config_file(tmp_path, "teacher: {lr: 1e-3, eta_min: .5e-4, weight_decay: 0}\nstudent: {lr: 1E-2}\n"
                                 "strategy_params: {x: {tau: 1e-3, big: 1E5, half: .5, neg: -2.5e-4, "
                                 "quoted: '1e-3'}}\n")
    config = load_config(path)
    assert config.teacher.lr == 0.001 and type(config.teacher.lr) is float
    assert config.teacher.eta_min == 5e-5 and config.student.lr == 0.01
    assert config.teacher.weight_decay == 0 and type(config.teacher.weight_decay) is int
    assert type(config.teacher.epochs) is int
    assert config.strategy_params["x"] == {"tau": 0.001, "big": 1e5, "half": 0.5, "neg": -2.5e-4, "quoted": "1e-3"}


def test_job_key_values_keep_their_types():
    assert vars(load_config().teacher) == {"epochs": 10, "batch_size": 32, "lr": 2e-3, "weight_decay": 1e-6,
                                           "eta_min": 2e-4, "augment": False, "eval_batch_size": 256}
    assert [type(v) for v in vars(load_config().teacher).values()] == [int, int, float, float, float, bool, int]


@pytest.mark.parametrize(("text", "problem"), [
    ('teacher: {epochs: "ten"}', "teacher.epochs: expected an integer >= 1, found 'ten'"),
    ("teacher: {epochs: yes}", "teacher.epochs: expected an integer >= 1, found True"),
    ("student: {lr: .nan}", "student.lr: expected a finite number > 0, found nan"),
    ("student: {lr: -.inf}", "student.lr: expected a finite number > 0, found -inf"),
    ("student: {weight_decay: true}", "student.weight_decay: expected a finite number >= 0, found True"),
    ("teacher: {batch_size: 1}", "teacher.batch_size: expected an integer >= 2, found 1"),
    ("teacher: 3", "teacher: expected a mapping of fit settings, found 3"),
    ("distill: {alpha: 1.5}", "distill.alpha: expected a number in [0, 1], found 1.5"),
    ("image_size: 4", "image_size: expected an integer >= 8, found 4"),
    ("seeds: [0, -1]",
     "seeds: expected a non-empty list of integers >= 0 (or a comma-separated string), found [0, -1]"),
    ("datasets: []", "datasets: expected a non-empty list of names (or a comma-separated string), found []"),
    ("device: gpu", "device: expected one of auto, cpu, cuda, cuda:N, mps, found 'gpu'"),
    ("precision: fp8", "precision: expected one of auto, bf16, fp16, fp32, found 'fp8'"),
    ("rerun: sometimes", "rerun: expected one of never, failed, all, found 'sometimes'"),
    ("strategy_params: {iee: 3}",
     "strategy_params: expected a mapping of name -> mapping of settings, found {'iee': 3}"),
])
def test_a_bad_value_names_the_file_the_key_and_what_was_found(tmp_path: Path, text: str, problem: str):
    with pytest.raises(ConfigError) as error:
        load_config(config_file(tmp_path, text + "\n"))
    assert str(error.value) == f"{tmp_path / 'run.yaml'}: {problem}"


def test_every_problem_is_listed(tmp_path: Path):
    path = config_file(tmp_path, 'teacher: {epochs: "ten", lrr: 1}\nstudent: {lr: 0}\nseeds: "0,x"\n')
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).splitlines() == [
        f"{path}: seeds: expected a non-empty list of integers >= 0 (or a comma-separated string), found '0,x'",
        f"{path}: teacher.epochs: expected an integer >= 1, found 'ten'",
        f"{path}: unknown key 'teacher.lrr'; did you mean 'teacher.lr'?",
        f"{path}: student.lr: expected a finite number > 0, found 0",
    ]


def test_precision_defaults_to_auto_and_round_trips(tmp_path: Path):
    assert load_config().precision == "auto"
    config = load_config(config_file(tmp_path, "precision: bf16\n"), {"device": "cuda:1"})
    assert config.precision == "bf16" and config.to_dict()["precision"] == "bf16"
    assert load_config(None, config.to_dict()) == config


def test_command_line_strings_are_coerced_and_checked_the_same_way():
    config = load_config(None, {"teacher": {"lr": "0.001", "epochs": "3"}, "seeds": "0, 1", "datasets": "a,b"})
    assert config.teacher.lr == 0.001 and config.teacher.epochs == 3 and type(config.teacher.epochs) is int
    assert config.seeds == (0, 1) and config.datasets == ("a", "b")
    with pytest.raises(ConfigError) as error:
        load_config(None, {"seeds": "0,x", "teacher": {"lr": "nan"}})
    assert str(error.value).splitlines() == [
        "command line: seeds: expected a non-empty list of integers >= 0 (or a comma-separated string), found '0,x'",
        "command line: teacher.lr: expected a finite number > 0, found 'nan'",
    ]
    with pytest.raises(ConfigError, match=r"^command line: unknown key 'rerum'; did you mean 'rerun'\?$"):
        load_config(None, {"rerum": "all"})


def test_bench_run_rejects_a_bad_config_before_any_job(tmp_path: Path, capsys: pytest.CaptureFixture):
    path = config_file(tmp_path, 'teacher: {epochs: "ten"}\n')
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    assert f"error: {path}: teacher.epochs: expected an integer >= 1, found 'ten'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
