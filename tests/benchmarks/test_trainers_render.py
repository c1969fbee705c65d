"""`benchmarks.trainers`' table: each ratio is computed from the epochs it names, and the
reference's spread is reported with what it means for the ratio goal."""

from __future__ import annotations

import argparse

from benchmarks import trainers as bench

PER_SAMPLE = bench.flops_per_sample((784, 300, 10))


def _values(keras: list[float]) -> dict[str, list[float]]:
    gemm = 200e9  # bound: 200 GFLOP/s over 958.8k FLOPs a sample, 208,594 samples/s
    values = {name: [gemm, gemm, gemm] for name in bench.GEMMS}
    values["tf loop"] = [160_000.0, 164_000.0, 168_000.0]
    values["pytensor"] = [150_000.0, 156_000.0, 158_000.0]
    values["keras fit"] = keras
    return values


def _row(section: str, name: str) -> list[str]:
    line = next(ln for ln in section.splitlines() if ln.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def _render(keras: list[float]) -> str:
    args = argparse.Namespace(
        epochs=3, hidden=300, batch_size=500, learning_rate=0.1, load_before=0.5
    )
    return bench.render(_values(keras), args)


def test_ratios_are_to_keras_median_and_to_its_fastest_epoch() -> None:
    section = _render([44_000.0, 60_000.0, 100_000.0])
    row = _row(section, "tf loop")
    assert row[2] == "164,000"
    assert row[4] == f"{164_000 / 60_000:.2f}x"  # the median epoch
    assert row[5] == f"{164_000 / 100_000:.2f}x"  # Keras's fastest epoch
    assert row[7] == f"{164_000 / (200e9 / PER_SAMPLE):.0%}"


def test_a_ratio_goal_above_the_bound_is_said_to_be_out_of_reach() -> None:
    section = _render([44_000.0, 60_000.0, 100_000.0])
    # 2.7 x 100k = 270k samples/s, 129% of the 208.6k bound
    assert "2.7x its fastest epoch is 129% of the bound, above the bound" in section


def test_a_slow_reference_leaves_the_ratio_goal_within_the_bound() -> None:
    line = bench.keras_reach([40_000.0, 50_000.0, 60_000.0], 200_000.0)
    assert "2.7x its fastest epoch is 81% of the bound, within the bound" in line
    assert "40,000..60,000 samples/s, 20%..30% of the bound" in line
