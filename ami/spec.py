"""Image specs: the named recipes (``ami/specs/*.yaml``) a machine class is launched from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImageSpec:
    """One AMI spec; ``name`` is what an experiment file's ``ami:`` field names.

    A literal ``ami-...`` id in the experiment file becomes a spec with ``ami_id`` set and no
    resolution rule.
    """

    name: str
    user: str = "ubuntu"
    flavour: str = "cpu"  # "cpu" | "cuda": which setup steps apply
    ami_id: str | None = None
    ssm_parameter: str | None = None
    owner: str | None = None
    name_filter: str | None = None
    setup: tuple[str, ...] = field(default_factory=tuple)
