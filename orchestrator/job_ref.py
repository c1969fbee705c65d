"""``JobRef``: the journal's typed reference to a detached job on a machine."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from infra.provider import Machine
from infra.transport.base import Job


@dataclass(frozen=True)
class JobRef:
    """What the journal keeps of a detached job (a task's trainer, or a ``setup:`` command),
    so ``down`` and ``attach`` can reach it after a crash: its process group and files, and
    the machine it runs on. Stored as JSON in ``tasks.job`` and in ``setup`` events, with the
    keys older journals used."""

    pid: int
    job_dir: str
    log: str
    machine_id: str = ""
    machine: str = ""  # the machine's name in the plan (its class or host alias)

    @classmethod
    def of(cls, job: Job, machine: Machine) -> JobRef:
        """The reference to ``job``, started on ``machine``."""
        return cls(job.pid, job.job_dir, job.log, machine.id, machine.name)

    def job(self, job_id: str) -> Job:
        """The transport's handle on the job again (to poll or stop it)."""
        return Job(job_id, self.pid, self.job_dir, self.log)

    def to_json(self) -> str:
        """The JSON the journal stores."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> JobRef:
        """A stored reference; keys a newer version added are ignored."""
        data = json.loads(text)
        return cls(
            int(data["pid"]),
            str(data["job_dir"]),
            str(data["log"]),
            str(data.get("machine_id", "")),
            str(data.get("machine", "")),
        )
