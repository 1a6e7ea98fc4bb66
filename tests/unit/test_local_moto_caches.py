"""The local stack's patch of moto's model and router caches: the first requests of a burst
share one load and one router per service, instead of each building its own."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest


def test_a_burst_of_first_requests_loads_each_model_and_router_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core import responses, routing, utils

    from sesflow.local import shims

    loads: Counter[tuple[str, str]] = Counter()
    original_load = utils._load_service_model

    def counting_load(service_name: str, model_name: str) -> dict[str, Any]:
        loads[(service_name, model_name)] += 1
        return original_load(service_name, model_name)

    # restored after the test: the patch replaces both module attributes
    monkeypatch.setattr(responses, "get_service_router", responses.get_service_router)
    monkeypatch.setattr(utils, "_load_service_model", counting_load)
    utils.get_service_model.cache_clear()
    routing.get_service_router.cache_clear()
    shims._load_each_service_model_once()

    callers = 12
    start = threading.Barrier(callers)
    routers: list[Any] = []

    def first_request() -> None:
        start.wait()
        routers.append(responses.get_service_router("lambda"))

    threads = [threading.Thread(target=first_request) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(routers) == callers
    assert len({id(r) for r in routers}) == 1, "every caller gets the one router"
    assert loads[("lambda", "service-2")] == 1, loads
    assert "rest-json" in routers[0]._routers, "the protocol's router is built with it"
    utils.get_service_model.cache_clear()
    routing.get_service_router.cache_clear()
