"""What a rule test run reports: one result per case."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RuleTestReport:
    file: Path
    cases: list[CaseResult]

    @property
    def ok(self) -> bool:
        return all(case.passed for case in self.cases)

    def format(self) -> str:
        """One line per case, details indented under a failure, then ``N passed, M failed``."""
        lines: list[str] = []
        for case in self.cases:
            lines.append(f"{'PASS' if case.passed else 'FAIL'} {case.name}")
            lines.extend("    " + line for message in case.messages for line in message.splitlines())
        passed = sum(case.passed for case in self.cases)
        lines.append(f"{passed} passed, {len(self.cases) - passed} failed")
        return "\n".join(lines)
