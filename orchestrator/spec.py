"""The experiment file's schema, as pydantic models (extra keys forbidden, snake_case).

A list where one value is expected makes a matrix axis: ``optimizer: [sgd, adam]`` is two
tasks. Axis fields are therefore stored as lists even when the file gives one value, so the
matrix code never has to ask which it got.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from infra.s3_url import parse_s3_url

Framework = Literal["tensorflow", "theano"]
Device = Literal["cpu", "gpu"]
Optimizer = Literal["gd", "sgd", "minibatch", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
Trainer = Literal["mnist", "pca"]

OPTIMIZERS: tuple[str, ...] = (
    "gd",
    "sgd",
    "minibatch",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
)


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


def _as_layer_lists(value: Any) -> Any:
    """``hidden: 300`` / ``[300]`` / ``[[300, 100], 800]``: each axis value is a list of layers."""
    values = value if isinstance(value, list) else [value]
    return [v if isinstance(v, list) else [v] for v in values]


def _s3_location(value: str) -> str:
    """``checkpoints: s3://<bucket>[/prefix]``, refused at load with what is wrong."""
    try:
        parse_s3_url(value)
    except ValueError as exc:  # the reason alone, without pydantic's "Value error, "
        raise PydanticCustomError("s3_url", "{reason}", {"reason": str(exc)}) from None
    return value


PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Strict):
    max_usd: PositiveFloat | None = None
    max_hours: PositiveFloat = 2.0


class Recovery(_Strict):
    """What happens when a task's machine goes away mid-task (a spot interruption notice, or
    the machine vanishing): the task is queued again and resumes from its last checkpoint that
    came back, on capacity of this kind; ``fail`` ends it instead. Every attempt counts
    against ``budget.max_usd``."""

    capacity: Literal["spot", "on-demand", "fail"] = "spot"  # spot: as the machine was planned
    retries: Annotated[int, Field(ge=0, le=20)] = 2  # attempts after the first, per task
    # How often a running task's checkpoints are pulled back (and on every notice).
    checkpoint_every_minutes: PositiveFloat = 5.0


def _gpu_ask(value: Any) -> Any:
    """``gpu: T4`` / ``gpu: T4:2`` (SkyPilot's spelling) -> ``{name: T4, count: 2}``."""
    if isinstance(value, str):
        name, _, count = value.partition(":")
        return {"name": name.strip(), **({"count": count.strip()} if count else {})}
    return value


Size = Annotated[str, Field(pattern=r"(?i)^\s*\d+(\.\d+)?\s*(gb|gib|g)?\s*$")]


class GpuAsk(_Strict):
    name: str | None = None  # T4, A10G, L4, V100, A100 (``orchestrate gpus``)
    count: PositiveInt = 1
    memory: Size | None = None  # per GPU, e.g. 24GB


class MachineClass(_Strict):
    """An EC2 machine: an ``instance_type``, or what it needs (``gpu``/``cpus``/``memory``),
    from which ``plan`` picks the cheapest fitting type (orchestrator.resources)."""

    instance_type: str = ""
    gpu: Annotated[GpuAsk, BeforeValidator(_gpu_ask)] | None = None
    cpus: PositiveInt | None = None
    memory: Size | None = None
    ami: str
    spot: bool | Literal["required"] = False
    fallback_types: list[str] = []
    zones: list[str] = []
    gpus: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _type_or_ask(self) -> MachineClass:
        asked = self.gpu is not None or self.cpus is not None or self.memory is not None
        if bool(self.instance_type) == asked:
            raise ValueError("give either instance_type or what it needs (gpu, cpus, memory)")
        return self


class Host(_Strict):
    """An ssh host: a name or address, or an ssh config alias whose HostName, User, Port,
    IdentityFile and ProxyJump fill what is left out here (infra.ssh_config)."""

    host: str
    port: Annotated[int, Field(gt=0, lt=65536)] | None = None  # default: the config's, or 22
    user: str | None = None  # default: the config's, or the local user
    key: str | None = None  # default: the config's IdentityFile, or ssh's own keys/agent
    gpus: Annotated[int, Field(ge=0)] = 0
    slots: PositiveInt = 1
    name: str | None = None
    host_key: str | None = None  # the host's public key line, pinned; or known_hosts
    known_hosts: str | None = None
    python: str = "python3"  # the interpreter with the trainers' frameworks on that host
    workspace_root: str = "orchestrate"  # relative to the login's home


class SshProxy(_Strict):
    """A bastion (ProxyJump) that AWS machines are reached through, its key pinned like any
    host's: ``use_private_ip`` then goes to their private addresses from there."""

    host: str
    port: Annotated[int, Field(gt=0, lt=65536)] = 22
    user: str | None = None  # default: the local user
    key: str | None = None  # default: ssh's own keys/agent
    host_key: str | None = None  # the bastion's public key line, pinned; or known_hosts
    known_hosts: str | None = None

    @model_validator(mode="after")
    def _pinned(self) -> SshProxy:
        if not self.host_key and not self.known_hosts:
            raise ValueError("pin the bastion's key: give host_key or known_hosts")
        return self


ParamValue = str | int | float | bool


class JobSpec(_Strict):
    """A built-in trainer job (``trainer:``) or the user's own command (``run:``)."""

    trainer: Trainer | None = None
    run: str | None = None
    params: dict[str, Annotated[list[ParamValue], BeforeValidator(_as_list)]] = {}
    setup: str | None = None
    outputs: list[str] = []
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] | None = None
    framework: Annotated[list[Framework], BeforeValidator(_as_list), Field(min_length=1)] = [
        "tensorflow"
    ]
    device: Annotated[list[Device], BeforeValidator(_as_list), Field(min_length=1)] = ["cpu"]
    optimizer: Annotated[list[Optimizer], BeforeValidator(_as_list), Field(min_length=1)] | None = (
        None
    )
    epochs: Annotated[list[PositiveInt], BeforeValidator(_as_list)] | None = None
    batch_size: Annotated[list[PositiveInt], BeforeValidator(_as_list)] | None = None
    hidden: Annotated[list[list[PositiveInt]], BeforeValidator(_as_layer_lists)] | None = None
    learning_rate: Annotated[list[PositiveFloat], BeforeValidator(_as_list)] | None = None
    momentum: Annotated[list[NonNegFloat], BeforeValidator(_as_list)] | None = None
    decay: Annotated[list[NonNegFloat], BeforeValidator(_as_list)] | None = None
    epsilon: Annotated[list[PositiveFloat], BeforeValidator(_as_list)] | None = None
    components: Annotated[list[PositiveInt], BeforeValidator(_as_list)] | None = None
    tol: PositiveFloat | None = None
    max_iter: PositiveInt | None = None
    normalisation: Literal["biased", "unbiased"] | None = None
    subset: PositiveInt | None = None
    seed: int = 0
    timeout_minutes: PositiveFloat | None = None
    # Machines one task trains on at once (data-parallel; TensorFlow's MultiWorkerMirrored).
    nodes: PositiveInt = 1


class Experiment(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    provider: Literal["local", "ssh", "aws"] = "local"
    region: str | None = None
    profile: str | None = None
    ssh_cidr: str | None = None
    allow_open_ssh: bool = False
    # Where machines launch: a subnet (and its VPC), a VPC's subnets, else the default VPC.
    subnet_id: Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")] | None = None
    vpc_id: Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")] | None = None
    # Reach machines at their private address (a VPN into the VPC); no public IP is asked for.
    use_private_ip: bool = False
    ssh_proxy: SshProxy | None = None  # reach machines through this bastion (ProxyJump)
    budget: Budget = Budget()
    recovery: Recovery = Recovery()
    machines: dict[str, MachineClass] = {}
    hosts: list[Host] = []
    # Where host aliases are read (default: $ORCHESTRATE_SSH_CONFIG, else ~/.ssh/config)
    ssh_config: str | None = None
    connect_deadline_s: PositiveFloat = 60.0  # how long to keep trying to reach an ssh host
    placement: Literal["by-device", "same-machine"] = "by-device"
    data_dir: str | None = None
    # Off-machine checkpoints (orchestrator.checkpoint_store); absent: only the run directory.
    checkpoints: Annotated[str, AfterValidator(_s3_location)] | None = None
    workdir: str | None = None  # synced to each machine for ``run:`` jobs; relative to the file
    ship_secrets: list[str] = []  # secret-looking files to ship anyway (refused by default)
    jobs: Annotated[list[JobSpec], Field(min_length=1)]
