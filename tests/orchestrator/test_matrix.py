from __future__ import annotations

from orchestrator.matrix import expand
from orchestrator.specfile import parse_experiment

DESIGN_EXAMPLE = """
name: mnist-cpu-vs-gpu
jobs:
  - trainer: mnist
    framework: [tensorflow, theano]
    optimizer: [sgd, momentum, nesterov, adagrad, rmsprop, adam]
    device: [cpu, gpu]
    epochs: 10
    batch_size: 500
    hidden: [300]
  - trainer: pca
    framework: [tensorflow, theano]
    device: [cpu, gpu]
    components: 10
"""


def test_cross_product_matches_the_design_count() -> None:
    tasks = expand(parse_experiment(DESIGN_EXAMPLE, "x.yaml"))
    assert len(tasks) == 2 * 6 * 2 + 2 * 2
    assert len({t.id for t in tasks}) == len(tasks)
    assert tasks[0].id == "mnist-tensorflow-sgd-cpu"
    assert "mnist-theano-rmsprop-gpu" in {t.id for t in tasks}
    assert "pca-theano-gpu" in {t.id for t in tasks}


def test_varying_axes_extend_the_id_and_reach_the_command_line() -> None:
    exp = parse_experiment(
        "name: x\njobs:\n  - trainer: mnist\n    optimizer: adam\n"
        "    learning_rate: [0.1, 0.001]\n    hidden: [[300, 100]]\n",
        "x.yaml",
    )
    tasks = expand(exp)
    assert [t.id for t in tasks] == [
        "mnist-tensorflow-adam-cpu-lr0.1",
        "mnist-tensorflow-adam-cpu-lr0.001",
    ]
    argv = tasks[0].argv(python="py", out="/o", data_dir="/d")
    assert argv[:3] == ["py", "-m", "trainers.mnist"]
    assert argv[argv.index("--learning-rate") + 1] == "0.1"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--hidden"] == ["300", "100"]
    assert argv[-2:] == ["--data-dir", "/d"]


def test_duplicate_ids_across_jobs_are_numbered() -> None:
    exp = parse_experiment(
        "name: x\njobs:\n  - trainer: pca\n  - trainer: pca\n    components: 3\n", "x.yaml"
    )
    assert [t.id for t in expand(exp)] == ["pca-tensorflow-cpu", "pca-tensorflow-cpu-2"]
