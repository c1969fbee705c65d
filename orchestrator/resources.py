"""Asking for resources as a person thinks: ``gpu: T4``, ``gpu: {memory: 24GB}``, ``cpus: 8``.

A machine class may name what it needs instead of an ``instance_type``. Planning turns that into
instance types, always the same way:

1. Candidates are the types in ``infra.aws.facts.INSTANCE_TYPES`` (the GPU table) that the
   price catalog prices in the region and that satisfy every part of the ask: GPU model
   (case-insensitive), GPU count, memory per GPU, vCPUs, memory.
2. They are ranked by $/h (spot price when ``spot:`` is set and the catalog has one), then by
   name, so equal prices never flip between runs.
3. The cheapest is the instance type; it and the next two become the capacity fallback list,
   and ``plan`` shows all three with their prices.

Nothing here calls AWS: the table and the catalog are bundled (``orchestrate prices --refresh``
updates prices), so ``plan`` answers offline.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from infra.aws.facts import DEFAULT_REGION, INSTANCE_TYPES, TypeInfo
from infra.aws.regions import region_problem
from infra.prices import PriceSource
from orchestrator.errors import SpecError, SpecIssue
from orchestrator.spec import Experiment, MachineClass

FALLBACKS = 2  # how many next-cheapest types follow the choice (and are shown)


GPU_MODELS = sorted({t.gpu for t in INSTANCE_TYPES.values() if t.gpu})

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(gb|gib|g)?\s*$", re.IGNORECASE)


def parse_gib(value: str | float) -> float:
    """``24GB`` / ``24 GiB`` / ``24`` -> 24.0 (GB and GiB are read alike, as AWS lists them)."""
    if isinstance(value, int | float):
        return float(value)
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a size; write e.g. 24GB")
    return float(m.group(1))


@dataclass(frozen=True)
class TypeCandidate:
    instance_type: str
    hourly_usd: float
    info: TypeInfo


@dataclass(frozen=True)
class TypeChoice:
    """How one machine class's ask became instance types: the choice first, then fallbacks."""

    machine: str
    ask: str
    region: str
    candidates: tuple[TypeCandidate, ...]

    @property
    def types(self) -> tuple[str, ...]:
        """The chosen type first, then its fallbacks."""
        return tuple(c.instance_type for c in self.candidates)

    def describe(self) -> str:
        """``gpu: T4 -> g4dn.xlarge $0.526/h (next: g4dn.2xlarge $0.752/h)``."""
        first, *rest = self.candidates
        nxt = ", ".join(f"{c.instance_type} ${c.hourly_usd:.3f}/h" for c in rest)
        tail = f" (next: {nxt})" if nxt else " (no other type fits)"
        return f"{self.ask} -> {first.instance_type} ${first.hourly_usd:.3f}/h{tail}"

    def to_json(self) -> dict[str, object]:
        """The choice and its candidates with prices, for ``plan --json``."""
        return {
            "machine": self.machine,
            "ask": self.ask,
            "region": self.region,
            "candidates": [
                {"instance_type": c.instance_type, "hourly_usd": c.hourly_usd}
                for c in self.candidates
            ],
        }


def describe_ask(mc: MachineClass) -> str:
    """The ask in words (``1x T4 GPU, 4+ vCPUs``), for messages and the plan."""
    parts = []
    if mc.gpu is not None:
        g = mc.gpu
        bits = [g.name or "any"] + ([f"x{g.count}"] if g.count != 1 else [])
        bits += [f">={g.memory}"] if g.memory else []
        parts.append("gpu: " + " ".join(bits))
    if mc.cpus:
        parts.append(f"cpus: {mc.cpus}")
    if mc.memory:
        parts.append(f"memory: {mc.memory}")
    return ", ".join(parts)


def fits(mc: MachineClass, info: TypeInfo) -> bool:
    """Whether a type satisfies every part of the machine class's ask (rule 1)."""
    if mc.gpu is None and info.gpus:
        return False  # a cpu-only ask never pays for a GPU
    if mc.gpu is not None:
        g = mc.gpu
        if not info.gpus or info.gpus < g.count:
            return False
        if g.name and (info.gpu or "").lower() != g.name.lower():
            return False
        if g.memory and info.gpu_memory_gib < parse_gib(g.memory):
            return False
    if mc.cpus and info.vcpus < mc.cpus:
        return False
    return not (mc.memory and info.memory_gib < parse_gib(mc.memory))


def candidates(
    mc: MachineClass, region: str, prices: PriceSource, *, spot: bool = False
) -> list[TypeCandidate]:
    """Every priced type in ``region`` that fits, cheapest first (rules 1 and 2)."""
    found = []
    for itype, info in INSTANCE_TYPES.items():
        price = prices.hourly_usd(itype, region, spot=spot)
        if price is not None and price == price and fits(mc, info):  # price == price: not NaN
            found.append(TypeCandidate(itype, float(price), info))
    return sorted(found, key=lambda c: (c.hourly_usd, c.instance_type))


def choose(
    name: str, mc: MachineClass, region: str, prices: PriceSource, *, spec_path: str = "experiment"
) -> TypeChoice:
    """The cheapest fitting type and the next ``FALLBACKS`` (rule 3); a SpecIssue if none."""
    issue_path = f"machines.{name}.gpu" if mc.gpu is not None else f"machines.{name}"
    if mc.gpu is not None and mc.gpu.name and mc.gpu.name.upper() not in GPU_MODELS:
        close = difflib.get_close_matches(mc.gpu.name.upper(), GPU_MODELS, n=1, cutoff=0.4)
        hint = f"did you mean {close[0]!r}?" if close else None
        known = ", ".join(GPU_MODELS)
        msg = f"unknown GPU {mc.gpu.name!r} (known: {known}; see `orchestrate gpus`)"
        raise SpecError([SpecIssue(spec_path, 1, 1, issue_path, msg, hint)])
    found = candidates(mc, region, prices, spot=bool(mc.spot))
    if not found:
        msg = f"no instance type in {region} has {describe_ask(mc)}"
        hint = f"see `orchestrate gpus --region {region}`"
        raise SpecError([SpecIssue(spec_path, 1, 1, issue_path, msg, hint)])
    return TypeChoice(name, describe_ask(mc), region, tuple(found[: 1 + FALLBACKS]))


def resolve_machines(
    exp: Experiment, prices: PriceSource, *, spec_path: str = "experiment"
) -> tuple[Experiment, tuple[TypeChoice, ...]]:
    """The experiment with every resource ask replaced by its chosen types, and the choices."""
    region = exp.region or DEFAULT_REGION
    machines = dict(exp.machines)
    choices: list[TypeChoice] = []
    issues: list[SpecIssue] = []
    for name, mc in exp.machines.items():
        if mc.instance_type:
            continue
        try:
            choice = choose(name, mc, region, prices, spec_path=spec_path)
        except SpecError as exc:
            issues += exc.issues
            continue
        choices.append(choice)
        first, *rest = choice.types
        update: dict[str, object] = {"instance_type": first, "fallback_types": rest}
        if mc.gpus is None:
            update["gpus"] = choice.candidates[0].info.gpus
        machines[name] = mc.model_copy(update=update)
    if issues:
        raise SpecError(issues)
    return exp.model_copy(update={"machines": machines}), tuple(choices)


def gpu_rows(region: str, prices: PriceSource) -> Sequence[TypeCandidate]:
    """``orchestrate gpus``: every GPU type priced in ``region``, cheapest first."""
    rows = []
    for itype, info in INSTANCE_TYPES.items():
        price = prices.hourly_usd(itype, region, spot=False)
        if info.gpus and price is not None and price == price:
            rows.append(TypeCandidate(itype, float(price), info))
    return sorted(rows, key=lambda c: (c.hourly_usd, c.instance_type))


Loc = tuple[str | int, ...]


def unpriced(exp: Experiment, prices: PriceSource) -> list[tuple[Loc, str, str]]:
    """Where the plan cannot price a launch: an unknown region, or an instance type (the
    first or any fallback) the catalog does not price there, each with a hint naming the
    refresh that fixes it. A launch without a price would run with its cost cap off, so
    ``plan`` and ``run`` refuse these (exit 2) before anything exists. Call it after
    ``resolve_machines``, when every machine has its types."""
    if exp.region and (problem := region_problem(exp.region)):
        return [(("region",), *problem)]
    region = exp.region or DEFAULT_REGION
    found: list[tuple[Loc, str, str]] = []
    for name, mc in exp.machines.items():
        for i, itype in enumerate((mc.instance_type, *mc.fallback_types)):
            price = prices.hourly_usd(itype, region, spot=bool(mc.spot)) if itype else 1.0
            if price is not None and price == price and price > 0:  # price == price: not NaN
                continue
            where: Loc = (
                ("machines", name, "instance_type")
                if i == 0
                else ("machines", name, "fallback_types", i - 1)
            )
            found.append(
                (
                    where,
                    f"no price for {itype} in {region}: launching it would leave the cost cap off",
                    f"run `orchestrate prices --refresh --region {region} --type {itype}`",
                )
            )
    return found


def image_mismatches(exp: Experiment) -> list[tuple[Loc, str, str]]:
    """Where a machine's instance type (first or fallback) cannot run its image: another
    architecture, or a family the image spec does not list (a DLAMI's drivers support only
    some GPU generations). Refused at plan, before anything exists."""
    from ami.spec import ImageSpecError, spec_for

    found: list[tuple[Loc, str, str]] = []
    for name, mc in exp.machines.items():
        if mc.ami.startswith("ami-"):
            continue  # a literal image id: its architecture is not known before AWS is asked
        try:
            image = spec_for(mc.ami)
        except (ImageSpecError, LookupError):
            continue  # reported where the provider is built
        for i, itype in enumerate((mc.instance_type, *mc.fallback_types)):
            why = image.mismatch(itype) if itype else None
            if why is None:
                continue
            where: Loc = (
                ("machines", name, "instance_type")
                if i == 0
                else ("machines", name, "fallback_types", i - 1)
            )
            families = ", ".join(image.instance_families) or image.architecture
            found.append((where, why, f"pick a type of {families}, or another ami"))
    return found
