"""A third-party trigger's FastAPI routes are served by the running operator.

The test writes what `pip install` would leave behind: a module and its dist-info declaring the plugin in the
`stargraph.triggers` entry-point group, on the operator's PYTHONPATH. The plugin's `routes()` returns a FastAPI
`APIRoute`; the operator discovers the plugin, runs its lifecycle, mounts the route, and answers it on its port.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Operators
from tests.support.distribution import write_trigger_distribution

pytestmark = pytest.mark.cluster

PLUGIN = '''
    """Answers GET /v1/acme/ping with FastAPI: the smallest third-party trigger that serves a route of its own."""
    from fastapi.routing import APIRoute


    class PingTrigger:
        def init(self, deps):
            self.started = False

        def start(self):
            self.started = True

        def stop(self):
            pass

        def routes(self):
            return [APIRoute("/v1/acme/ping", self.ping, methods=["GET"])]

        async def ping(self, who: str = "nobody"):
            return {"pong": who, "started": self.started}
'''


@pytest.fixture(scope="module")
def ping_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("acme-ping-site")
    write_trigger_distribution(site, module="acme_ping", source=PLUGIN, entry_point="PingTrigger")
    return site


def test_a_third_party_plugin_serves_its_fastapi_route_from_the_operator(operators: Operators, ping_site: Path) -> None:
    operator = operators.start("acme-ping", env={"PYTHONPATH": str(ping_site)})

    ready = httpx.get(f"{operator.url}/readyz", timeout=5.0).json()
    assert ready["plugins"]["acme_ping"] == "ok"
    # FastAPI parses the query parameter; `started` shows the lifecycle ran before the route was served.
    answer = httpx.get(f"{operator.url}/v1/acme/ping", params={"who": "e2e"}, timeout=5.0)
    assert answer.status_code == 200
    assert answer.json() == {"pong": "e2e", "started": True}
