"""A study (the one class for it): a strategy, the tasks its probes and data come from,
and the format it is compared with (plain QA)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Study:
    """One swift/validation study: ``strategy`` (a format), its ``in_task`` tasks, and the
    ``baseline`` format its probes are paired with (same queries)."""

    name: str
    strategy: str
    in_task: tuple[str, ...]
    baseline: str = "qa"

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_task", tuple(self.in_task))

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> "Study":
        """From one entry of the config's ``studies`` list."""
        return cls(entry["name"], entry["strategy"], tuple(entry["in_task"]))
