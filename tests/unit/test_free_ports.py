"""Ports the integration tests hand out are never handed out twice in one run (CI once gave the API and a
ledger's /metrics both 40001), are free when chosen, and lie below the kernel's ephemeral range."""

from __future__ import annotations

import pytest

from tests.integration import test_ledger_support as support


class RepeatingPick:
    """A chooser that offers the given ports in turn (25001 twice, …)."""

    def __init__(self, offers: list[int]) -> None:
        self.offers = iter(offers)
        self.ranges: list[tuple[int, int]] = []

    def randrange(self, start: int, stop: int) -> int:
        self.ranges.append((start, stop))
        return next(self.offers)


def test_free_port_never_repeats_a_port_and_skips_a_busy_one(monkeypatch: pytest.MonkeyPatch) -> None:
    pick = RepeatingPick([25001, 25001, 25002, 25003, 25004])
    monkeypatch.setattr(support, "_pick", pick)
    monkeypatch.setattr(support, "port_is_free", lambda port: port != 25003)
    monkeypatch.setattr(support, "_handed_out", set())
    assert [support.free_port(), support.free_port(), support.free_port()] == [25001, 25002, 25004]


def test_free_port_chooses_below_the_kernels_ephemeral_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel gives outgoing connections ports from 32768 up: a port chosen there can be taken by
    a client's connection before the server meant for it starts (CI: the API's 54362)."""
    monkeypatch.setattr(support, "_handed_out", set())
    ports = [support.free_port() for _ in range(20)]
    assert all(20_000 <= port < 32_768 for port in ports) and len(set(ports)) == len(ports)


def test_free_ports_gives_runs_below_the_kernels_ephemeral_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """The apps' tests take four ports in a row: CI's API and ledger ports were taken by a client's
    connection while they came from the ephemeral range (`serve` never became healthy)."""
    monkeypatch.setattr(support, "_handed_out", set())
    runs = [support.free_ports(4) for _ in range(10)]
    ports = [port for run in runs for port in run]
    assert all(20_000 <= port < 32_768 for port in ports) and len(set(ports)) == len(ports)
    assert all(run == list(range(run[0], run[0] + 4)) for run in runs)


def test_free_ports_skips_a_run_with_a_busy_port(monkeypatch: pytest.MonkeyPatch) -> None:
    pick = RepeatingPick([25001, 25011])
    monkeypatch.setattr(support, "_pick", pick)
    monkeypatch.setattr(support, "port_is_free", lambda port: port != 25003)
    monkeypatch.setattr(support, "_handed_out", set())
    assert support.free_ports(3) == [25011, 25012, 25013]
