"""Ports the integration tests hand out are never handed out twice in one run: the kernel may offer a
port it has just offered again (CI: the API and a ledger's /metrics both got 40001, twice)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration import test_ledger_support as support


class RepeatingKernel:
    """A socket whose ephemeral port is 40001 twice, then 40002, 40003, …"""

    offers: Iterator[int]

    def __enter__(self) -> RepeatingKernel:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass

    def bind(self, _address: tuple[str, int]) -> None:
        pass

    def getsockname(self) -> tuple[str, int]:
        return "127.0.0.1", next(RepeatingKernel.offers)


def test_free_port_never_repeats_a_port_the_kernel_offers_again(monkeypatch: pytest.MonkeyPatch) -> None:
    RepeatingKernel.offers = iter([40001, 40001, 40002, 40003])
    monkeypatch.setattr(support.socket, "socket", RepeatingKernel)
    monkeypatch.setattr(support, "_handed_out", set())
    assert [support.free_port(), support.free_port(), support.free_port()] == [40001, 40002, 40003]
