"""The `stargraph` command line: errors name the argument at fault; `run` talks to a real server on loopback."""

import importlib.metadata
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import uvicorn

from stargraph.cli import main
from stargraph.http import HttpError, HttpRequest
from stargraph.runs import InMemoryRunSink
from stargraph.serve import create_app
from tests.support.app import serving_in_thread
from tests.support.operator import free_port


async def allow_token(request: HttpRequest, namespace: str) -> Mapping[str, Any]:
    if request.headers.get("authorization") != "Bearer t0ken":
        raise HttpError(401, "unauthenticated", "a valid bearer token is required")
    return {"username": "tester"}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, InMemoryRunSink]]:
    sink = InMemoryRunSink()
    port = free_port()
    app = create_app(sink=sink, plugins=["manual"], deps={"authorizer": allow_token})
    with serving_in_thread(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")):
        yield f"http://127.0.0.1:{port}", sink


def test_run_twice_with_the_same_key_prints_the_same_run(server, capsys) -> None:  # type: ignore[no-untyped-def]
    url, sink = server
    key = str(uuid.uuid4())
    argv = ["run", "crontrigger/nightly", "-n", "team-a", "--param", "env=prod", "--idempotency-key", key]
    assert main([*argv, "--server", url, "--token", "t0ken"]) == 0
    assert main([*argv, "--server", url, "--token", "t0ken"]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first == second and first.startswith("team-a/nightly-")
    assert sum(run.trigger_id == "manual:team-a/nightly" for run in sink.runs.values()) == 1


def test_refused_request_exits_1_with_the_reason(server, capsys) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    with pytest.raises(SystemExit) as caught:
        main(["run", "crontrigger/nightly", "--server", url, "--token", "wrong"])
    assert caught.value.code == 1
    assert "401 unauthenticated" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "nightly"], "TRIGGER"),
        (["run", "crontrigger/nightly", "--param", "novalue"], "--param"),
        (["run", "crontrigger/nightly", "--idempotency-key", "not-a-uuid"], "--idempotency-key"),
        (["next", "61 * * * *"], "schedule"),
        (["next", "* * * * *", "--time-zone", "Nowhere/Land"], "timeZone"),
        (["history", "nightly"], "crontrigger/NAME"),
        (["history", "webhooktrigger/push"], "crontrigger/NAME"),
        (["history", "crontrigger/nightly", "-o", "wide"], "--output"),
        (["describe", "cronjob/nightly"], "KIND/NAME"),
        (["describe", "crontrigger/nightly", "--next", "-1"], "--next"),
        (["completion", "fish"], "shell"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(argv: list[str], named: str, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert named in capsys.readouterr().err


def test_next_prints_explanation_and_fires(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["next", "0 9 * * 1-5", "--time-zone", "Europe/Berlin", "-c", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "At 09:00 on Monday through Friday"
    assert len(lines) == 4 and all("T09:00:00+0" in line for line in lines[1:])


def test_version_is_the_installed_distributions(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"stargraph {importlib.metadata.version('stargraph')}\n"
