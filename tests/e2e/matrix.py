"""Login paths, their checks and the setup x path x phase matrix the lifecycle test fills."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.clients import ClientStack


@dataclass(frozen=True)
class Login:
    """A login name with the credentials its owner holds."""

    name: str
    password: str
    public_key: str
    identity: Path


Check = Callable[[ClientStack, Login], bool]


def _key_listed(stack: ClientStack, login: Login) -> bool:
    wanted = login.public_key.split()[1]
    return any(wanted in line.split() for line in stack.ssh_keys(login.name))


PATHS: dict[str, Check] = {
    "getent passwd": lambda stack, login: stack.getent_passwd(login.name) is not None,
    "id": lambda stack, login: stack.id(login.name) is not None,
    "PAM password": lambda stack, login: stack.authenticate(login.name, login.password),
    "PAM account": lambda stack, login: stack.account(login.name),
    "su from root": lambda stack, login: stack.su_from_root(login.name),
    "su with password": lambda stack, login: stack.su_with_password(login.name, login.password),
    "ssh key": lambda stack, login: stack.ssh_key_login(login.name, login.identity),
    "ssh password": lambda stack, login: stack.ssh_password_login(login.name, login.password),
    "key lookup": _key_listed,
}
"""Every way into a host, as a check that says whether ``login`` gets in."""

POLL_INTERVAL = 0.5


@dataclass(frozen=True)
class Cell:
    """What one path did in one phase: ``allowed`` against ``expected``; ``seconds`` is how
    long after the SCIM change it took to reach ``expected`` when polled (None: checked
    once after a cache flush, or never reached)."""

    allowed: bool
    expected: bool
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.allowed is self.expected

    def render(self) -> str:
        text = "allowed" if self.allowed else "denied"
        if not self.ok:
            return f"{text.upper()}!"
        if self.seconds is not None and self.seconds >= 1:
            return f"{text} {self.seconds:.0f}s"
        return text


@dataclass(frozen=True)
class Column:
    """One phase of the lifecycle as seen by one login (a rename has two)."""

    phase: str
    login: Login
    expected: bool


def check_once(stack: ClientStack, columns: Sequence[Column]) -> dict[tuple[str, str], Cell]:
    """Every path of every column, checked once, all at the same time."""
    keys = [((column.phase, path), column) for column in columns for path in PATHS]
    with ThreadPoolExecutor(len(keys)) as pool:
        futures = {key: pool.submit(PATHS[key[1]], stack, column.login) for key, column in keys}
        return {key: Cell(futures[key].result(), column.expected) for key, column in keys}


def poll(
    stack: ClientStack, columns: Sequence[Column], started: float, bound: float
) -> dict[tuple[str, str], Cell]:
    """Check every path, each in its own thread, until it reaches its expected state, for
    at most ``bound`` seconds after ``started`` (a ``time.monotonic()``); then confirm all
    of them once more: a path that reached its state and left it again is reported as it
    ended. The seconds recorded are those of the first check that saw the expected state,
    taken when that check returned (an upper bound of the moment the path changed)."""

    def until_expected(key: tuple[str, str], column: Column) -> float | None:
        while True:
            if PATHS[key[1]](stack, column.login) is column.expected:
                return time.monotonic() - started
            if time.monotonic() - started > bound:
                return None
            time.sleep(POLL_INTERVAL)

    keys = [((column.phase, path), column) for column in columns for path in PATHS]
    with ThreadPoolExecutor(len(keys)) as pool:
        futures = {key: pool.submit(until_expected, key, column) for key, column in keys}
        reached = {key: future.result() for key, future in futures.items()}
    cells = {}
    for key, cell in check_once(stack, columns).items():
        cells[key] = Cell(cell.allowed, cell.expected, reached[key] if cell.ok else None)
    return cells


@dataclass
class Matrix:
    """The lifecycle's results: cells by (setup, phase, path), in the order they came."""

    setups: list[str] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, setup: str, cells: dict[tuple[str, str], Cell]) -> None:
        for (phase, path), cell in cells.items():
            if phase not in self.phases:
                self.phases.append(phase)
            self.cells[(setup, phase, path)] = cell

    def failures(self, setup: str) -> list[str]:
        return [
            f"{phase} / {path}: {cell.render()} (expected "
            f"{'allowed' if cell.expected else 'denied'})"
            for (name, phase, path), cell in self.cells.items()
            if name == setup and not cell.ok
        ]

    def closing_time(self, setup: str, phase: str) -> float | None:
        """Seconds from the SCIM change until the last path of ``phase`` reached its
        expected state, or None when one never did."""
        cells = [cell for (name, p, _), cell in self.cells.items() if name == setup and p == phase]
        if not cells or not all(cell.ok for cell in cells):
            return None
        return max(cell.seconds or 0.0 for cell in cells)

    def render(self) -> str:
        header = ["setup", "path", *self.phases]
        rows = [header]
        for setup in self.setups:
            if setup in self.errors:
                rows.append([setup, "(not run)", self.errors[setup].splitlines()[0][:100]])
                continue
            for path in PATHS:
                row = [setup, path]
                for phase in self.phases:
                    cell = self.cells.get((setup, phase, path))
                    row.append(cell.render() if cell else "-")
                rows.append(row)
        widths = [
            max(len(row[i]) for row in rows if i < len(row) and len(row) == len(header))
            for i in range(len(header))
        ]
        lines = []
        for index, row in enumerate(rows):
            lines.append(
                "  ".join(
                    text.ljust(width) for text, width in zip(row, widths, strict=False)
                ).rstrip()
            )
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
        expected = ", ".join(f"{phase}: {self._expected(phase)}" for phase in self.phases)
        lines += [
            "",
            f"expected: {expected}",
            "UPPER CASE! = not what was expected; 'Ns' = seconds after the SCIM change until",
            "the path reached its expected state (polled setups, no cache flush)",
            *self.notes,
        ]
        return "\n".join(lines)

    def _expected(self, phase: str) -> str:
        for (_, p, _), cell in self.cells.items():
            if p == phase:
                return "allowed" if cell.expected else "denied"
        return "?"


def summary_lines(matrix: Matrix, setups: Iterable[str], phases: Iterable[str]) -> list[str]:
    """Per polled setup and phase, the time from the SCIM change to every path settled."""
    lines = []
    for setup in setups:
        parts = []
        for phase in phases:
            seconds = matrix.closing_time(setup, phase)
            parts.append(f"{phase} {'never' if seconds is None else f'{seconds:.1f} s'}")
        lines.append(f"  {setup}: " + ", ".join(parts))
    return lines


REPORTS: list[tuple[str, str]] = []
"""(title, text) sections that tests/e2e/conftest.py prints in the terminal summary."""
