"""Image specs: the named recipes (``ami/specs/*.yaml``) a machine class is launched from.

A spec says where the base image comes from (a literal id, an SSM public parameter, or an
owner + name filter), who logs in, and what the setup installs. ``spec_hash`` is the bake cache
key: two specs with the same hash produce the same baked image, so a bake is skipped when an
image tagged with that hash already exists.

YAML is read with pydantic (``extra="forbid"``) only here; what leaves this module is the frozen
``ImageSpec`` dataclass, so nothing above depends on pydantic models.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Flavour = Literal["cpu", "cuda"]

# Where the setup scripts put the Python environment the trainers run in; the engine runs
# ``<venv>/bin/python -m trainers...`` on a machine launched from the spec.
DEFAULT_VENV = "/opt/orchestrate/venv"


@dataclass(frozen=True)
class ImageSpec:
    """One AMI spec; ``name`` is what an experiment file's ``ami:`` field names.

    A literal ``ami-...`` id in the experiment file becomes a spec with ``ami_id`` set and no
    resolution rule (see ``spec_for``).
    """

    name: str
    user: str = "ubuntu"
    flavour: str = "cpu"  # "cpu" | "cuda": which setup steps apply
    ami_id: str | None = None
    ssm_parameter: str | None = None
    owner: str | None = None
    name_filter: str | None = None
    setup: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    architecture: str = "x86_64"
    # Minimum root volume; the provider raises it to the base image's snapshot size if larger.
    root_volume_gb: int = 40
    # pytensor 3 needs >= 3.11: Ubuntu 24.04's python3 is 3.12 (22.04's 3.11 is only an rc).
    python: str = "python3"
    venv: str = DEFAULT_VENV
    packages: tuple[str, ...] = field(default_factory=tuple)  # pip requirements for the venv
    # The instance families the image supports (``g4dn``, ``p5``); empty: any of its
    # architecture. A GPU image's drivers support only some GPU generations (no Volta/p3).
    instance_families: tuple[str, ...] = field(default_factory=tuple)
    bake_instance_type: str | None = None  # what ``ami bake`` launches by default

    @property
    def venv_python(self) -> str:
        """The interpreter the engine should run trainers with on a machine of this image."""
        return f"{self.venv}/bin/python"

    @property
    def bake_type(self) -> str:
        """The instance type ``ami bake`` uses by default: the spec's own, else a GPU type
        for a CUDA image (its setup checks the driver) and a small CPU type otherwise."""
        return self.bake_instance_type or (
            "g4dn.xlarge" if self.flavour == "cuda" else "c6i.xlarge"
        )

    def mismatch(self, instance_type: str) -> str | None:
        """Why ``instance_type`` cannot run this image, or None when it can.

        Contract: 1. a Graviton type (``c7g``, ``t4g``: a ``g`` after the generation digit)
        is arm64, every other type x86_64, and it must match ``architecture``; 2. with
        ``instance_families`` listed, the type's family must be one of them.
        """
        family = instance_type.split(".", 1)[0]
        arch = "arm64" if _GRAVITON.match(family) else "x86_64"
        if arch != self.architecture:
            return f"{instance_type} is {arch} and image {self.name} is {self.architecture}"
        if self.instance_families and family not in self.instance_families:
            return (
                f"image {self.name} supports the {', '.join(self.instance_families)} families, "
                f"not {family}"
            )
        return None


_GRAVITON = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*$")


class ImageSpecError(ValueError):
    """A spec file is missing or invalid; ``issues`` lists every problem at once.

    A ``ValueError`` rather than one of our error classes because ``ami`` is the bottom floor
    and imports nothing of ours; the orchestrator turns it into a ``SpecError``.
    """

    def __init__(self, source: str, issues: list[str]) -> None:
        self.source = source
        self.issues = issues
        super().__init__(f"{source}: " + "; ".join(issues))


class _SpecModel(BaseModel):
    """The YAML schema of one spec file (snake_case keys, nothing unknown)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    user: str = "ubuntu"
    flavour: Flavour = "cpu"
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    ami_id: str | None = Field(default=None, pattern=r"^ami-[0-9a-f]{8,17}$")
    ssm_parameter: str | None = Field(default=None, pattern=r"^/")
    owner: str | None = None
    name_filter: str | None = None
    root_volume_gb: int = Field(default=40, ge=8, le=16384)
    python: str = "python3"
    venv: str = Field(default=DEFAULT_VENV, pattern=r"^/")
    packages: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    instance_families: tuple[str, ...] = ()
    bake_instance_type: str | None = None

    @model_validator(mode="after")
    def _one_way_to_find_the_base(self) -> _SpecModel:
        # A spec must say how to find its base image; owner and name_filter only work together.
        if (self.owner is None) != (self.name_filter is None):
            raise ValueError("owner and name_filter must be given together")
        if self.ami_id is None and self.ssm_parameter is None and self.owner is None:
            raise ValueError("give one of ami_id, ssm_parameter, or owner + name_filter")
        return self

    def to_spec(self) -> ImageSpec:
        return ImageSpec(**self.model_dump())


def specs_dir() -> Path:
    """The folder holding the bundled spec files (``ami/specs``)."""
    return Path(str(resources.files("ami") / "specs"))


def load_spec_file(path: Path) -> ImageSpec:
    """Read and validate one spec file.

    Raises:
        ImageSpecError: the file is missing, not YAML, or breaks the schema (all issues listed).
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ImageSpecError(str(path), [f"cannot read: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ImageSpecError(str(path), [f"not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise ImageSpecError(str(path), ["expected a mapping of spec fields"])
    try:
        model = _SpecModel.model_validate(raw)
    except ValidationError as exc:
        issues = [
            f"{'.'.join(str(p) for p in err['loc']) or '<spec>'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ImageSpecError(str(path), issues) from exc
    return model.to_spec()


def load_specs(directory: Path | None = None) -> dict[str, ImageSpec]:
    """Every spec in ``directory`` (default: the bundled ones), keyed by spec name."""
    folder = directory or specs_dir()
    specs: dict[str, ImageSpec] = {}
    for path in sorted(folder.glob("*.yaml")):
        spec = load_spec_file(path)
        if spec.name in specs:
            raise ImageSpecError(str(path), [f"duplicate spec name {spec.name!r}"])
        specs[spec.name] = spec
    return specs


def spec_for(name: str, *, directory: Path | None = None) -> ImageSpec:
    """The spec an experiment's ``ami:`` value names: a spec name or a literal ``ami-...`` id.

    Raises:
        ImageSpecError: no spec has that name (the message lists the known names).
    """
    if name.startswith("ami-"):
        return ImageSpec(name=name, ami_id=name)
    specs = load_specs(directory)
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise ImageSpecError(name, [f"no AMI spec named {name!r} (known: {known})"])
    return specs[name]


def setup_script(flavour: str) -> str:
    """The bundled setup script for a flavour (``ami/setup/<flavour>.sh``), ready to run.

    ``common.sh`` (retries, apt, the login user's venv, the installer) is put in front of the
    flavour's own steps, so the result is one self-contained bash script.
    """
    folder = resources.files("ami") / "setup"
    path = folder / f"{flavour}.sh"
    if flavour == "common" or not path.is_file():
        raise ImageSpecError(flavour, [f"no setup script for flavour {flavour!r}"])
    shebang, _, steps = path.read_text(encoding="utf-8").partition("\n")
    common = (folder / "common.sh").read_text(encoding="utf-8")
    return f"{shebang}\n{common}\n{steps}"


def spec_hash(spec: ImageSpec) -> str:
    """A content hash of everything that decides what a baked image holds.

    The display fields (``name``, ``description``) are left out, and the setup script's text is
    put in, so editing ``ami/setup/cuda.sh`` invalidates every cached CUDA bake. A literal base
    id and a resolution rule hash differently even if they resolve to the same image today;
    "latest" moves, and the bake records the base id it used in its own tags.

    Returns:
        16 hex digits (64 bits): short enough for a tag value, long enough not to collide.
    """
    fields = asdict(spec)
    # Not what the image holds: where it may run, and what bakes it.
    for display_only in ("name", "description", "instance_families", "bake_instance_type"):
        fields.pop(display_only)
    fields["setup_script"] = setup_script(spec.flavour) if spec.flavour in ("cpu", "cuda") else ""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
