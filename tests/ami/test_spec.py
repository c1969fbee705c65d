from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ami.spec import ImageSpec, ImageSpecError, load_spec_file, load_specs, spec_for, spec_hash


def test_bundled_specs_load_with_their_resolution_rules() -> None:
    specs = load_specs()
    cpu, gpu = specs["ubuntu24-cpu"], specs["dl-gpu-ubuntu24"]
    assert cpu.flavour == "cpu" and cpu.owner == "099720109477"
    assert (cpu.ssm_parameter or "").endswith("/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id")
    assert cpu.python == gpu.python == "python3"  # 24.04: a released 3.12
    assert gpu.flavour == "cuda" and gpu.owner == "amazon"
    assert gpu.name_filter == "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04)*"
    assert any(p.startswith("tensorflow[and-cuda]") for p in gpu.packages)
    assert any(p.startswith("jax[cuda12]") for p in gpu.packages)


def test_literal_ami_id_becomes_a_spec_without_rules() -> None:
    spec = spec_for("ami-0123456789abcdef0")
    assert spec.ami_id == "ami-0123456789abcdef0" and spec.ssm_parameter is None


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ImageSpecError, match="known: dl-gpu-ubuntu24, ubuntu24-cpu"):
        spec_for("ubuntu24")


def test_every_issue_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nflavour: rocm\nroot_volume_gb: 2\ncolour: blue\nowner: me\n")
    with pytest.raises(ImageSpecError) as info:
        load_spec_file(path)
    text = "\n".join(info.value.issues)
    assert "flavour" in text and "root_volume_gb" in text and "colour" in text


def test_owner_needs_a_name_filter(tmp_path: Path) -> None:
    path = tmp_path / "half.yaml"
    path.write_text("name: x\nowner: '099720109477'\n")
    with pytest.raises(ImageSpecError, match="owner and name_filter"):
        load_spec_file(path)


def test_hash_follows_content_not_display_name() -> None:
    base = load_specs()["ubuntu24-cpu"]
    renamed = dataclasses.replace(base, name="other", description="same content")
    assert spec_hash(renamed) == spec_hash(base)
    assert spec_hash(dataclasses.replace(base, packages=("numpy",))) != spec_hash(base)
    assert spec_hash(dataclasses.replace(base, flavour="cuda")) != spec_hash(base)
    assert len(spec_hash(base)) == 16


def test_spec_stays_hashable_and_frozen() -> None:
    spec = ImageSpec(name="x", ami_id="ami-12345678")
    assert {spec: 1}[spec] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "y"  # type: ignore[misc]
