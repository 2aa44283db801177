"""The scenario contract: how a cell's queries are issued and recorded, one class per MLPerf scenario.

A scenario is added in one place: a :class:`Scenario` subclass registered by name, built in
(:data:`BUILTIN_SCENARIOS`) or through the ``portbench.scenarios`` entry-point group. The worker
builds a :class:`ScenarioContext` for the cell and calls :meth:`Scenario.record`, which measures and
writes its figures into the cell's result. Suite files are checked against :func:`scenario_names`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from portbench.plugins import Registry

if TYPE_CHECKING:
    from portbench.backends.base import Backend, Session
    from portbench.harness.audits import OutputTap
    from portbench.harness.config import CellPlan
    from portbench.harness.energy import EnergyMeter
    from portbench.harness.results import CellResult
    from portbench.harness.turns import Turns
    from portbench.harness.workload import PreparedTask, Query


@dataclass(frozen=True)
class ScenarioContext:
    """Everything a scenario may use: the plan, the backend (for ``synchronize``), the prepared task,
    its sessions by role (to clone) and the task's timed queries, bound to those sessions."""

    plan: CellPlan
    backend: Backend
    prepared: PreparedTask
    sessions: Mapping[str, Session]
    queries: Sequence[Query]
    # Set when the cell's audits run: a scenario passes the timed queries it issues through
    # ``output_tap.wrap`` so a seeded sample of their outputs is kept (``harness.audits``).
    output_tap: OutputTap | None = None
    # Power sources probed for the cell: a scenario times its loops inside ``meter.window()`` so the
    # energy of exactly the timed work is recorded (``harness.energy``); None: no energy recorded.
    meter: EnergyMeter | None = None
    # Set when the cell is timed in lockstep with a partner process (``harness.lockstep``): a
    # scenario that supports it (single-stream) holds ``turns.turn()`` for each step it times.
    turns: Turns | None = None


class Scenario(ABC):
    """One way of issuing queries. ``record`` measures, fills the result, and returns the batch sizes
    it ran (for the run manifest)."""

    name: ClassVar[str]
    description: ClassVar[str]
    # Whether the runner may time the cell again in further worker processes (``suite.processes``)
    # and pool their latencies: true where the headline is the latency distribution of one loop.
    repeatable: ClassVar[bool] = False
    # Whether the scenario honours ``ScenarioContext.turns`` (every timed step inside a turn), so
    # ``portbench ab`` may time it in lockstep with a partner process; one that ignored the turns
    # would leave its partner waiting.
    lockstep: ClassVar[bool] = False

    @abstractmethod
    def record(self, context: ScenarioContext, result: CellResult) -> list[int]:
        """Measure the cell's performance pass and record it into ``result``."""


BUILTIN_SCENARIOS: Mapping[str, str] = {
    "single-stream": "portbench.harness.worker:SingleStreamScenario",
    "offline": "portbench.harness.worker:OfflineScenario",
    "multi-stream": "portbench.harness.worker:MultiStreamScenario",
    "server": "portbench.harness.server:ServerScenario",
}
ENTRY_POINT_GROUP = "portbench.scenarios"
SCENARIOS = Registry[Scenario]("scenario", Scenario, BUILTIN_SCENARIOS, ENTRY_POINT_GROUP)


scenario_names = SCENARIOS.names  # every scenario a suite may name, none imported
create_scenario = SCENARIOS.create
