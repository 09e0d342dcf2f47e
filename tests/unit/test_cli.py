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
        (["next", "61 * * * *"], "SCHEDULE: "),
        (["next", "* * * * *", "--time-zone", "Nowhere/Land"], "--time-zone: "),
        (["next", "* * * * *", "--from", "yesterday"], "--from: "),
        (["next", "* * * * *", "--from", "2026-10-25T02:30:00"], "--from: "),  # no offset: which 02:30?
        (["next", "* * * * *", "--repeated-time", "Twice"], "--repeated-time"),
        (["next", "* * * * *", "--skipped-time", "RunLater"], "--skipped-time"),
        (["operator", "--tls-cert-file", "tls.crt"], "--tls-key-file: required with --tls-cert-file"),
        (["operator", "--tls-key-file", "tls.key"], "--tls-cert-file: required with --tls-key-file"),
        (["operator", "--tls-cert-dir", "/nonexistent"], "--tls-cert-dir: cannot load the certificate"),
        (["operator", "--tls-cert-dir", "d", "--tls-key-file", "k"], "--tls-cert-dir: give either it"),
        (["operator", "--admission-port", "70000", "--tls-cert-dir", "d"], "--admission-port: 70000"),
        (["backfill", "ct/n", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"], "--to: "),
        (["backfill", "ct/n", "--from", "2026-01-01T00:00:00", "--to", "now"], "--from: "),
        (["backfill", "ct/n", "--from", "yesterday", "--to", "now"], "--from: "),
        (["backfill", "ct/n", "--from", "2026-01-01T00:00:00Z", "--to", "now", "--max-runs", "0"], "--max-runs: "),
        (
            ["backfill", "ct/n", "--from", "2026-01-01T00:00:00Z", "--to", "now", "--parallelism", "0"],
            "--parallelism: ",
        ),
        (["backfill", "wt/n", "--from", "2026-01-01T00:00:00Z", "--to", "now"], "KIND/NAME: WebhookTrigger has no"),
        (["backfill", "n", "--from", "2026-01-01T00:00:00Z", "--to", "now"], "KIND/NAME: expected"),
        (["backfill", "ct/n", "--from", "2026-01-01T00:00:00Z", "--to", "now", "--name", "Bad_Name"], "--name: "),
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


NEXT_BERLIN = ["next", "30 2 * * *", "--time-zone", "Europe/Berlin", "-c", "3"]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        pytest.param(
            ["--from", "2026-10-24T12:00:00Z"],
            [
                "2026-10-25T02:30:00+02:00  (2026-10-25T00:30:00Z)  [repeated time: first occurrence; "
                "not again at 2026-10-25T02:30:00+01:00 (--repeated-time Once)]",
                "2026-10-26T02:30:00+01:00  (2026-10-26T01:30:00Z)",
                "2026-10-27T02:30:00+01:00  (2026-10-27T01:30:00Z)",
            ],
            id="fall-back-once",
        ),
        pytest.param(
            ["--from", "2026-10-24T14:00:00+02:00", "--repeated-time", "Both"],
            [
                "2026-10-25T02:30:00+02:00  (2026-10-25T00:30:00Z)  [repeated time: first occurrence]",
                "2026-10-25T02:30:00+01:00  (2026-10-25T01:30:00Z)  [repeated time: second occurrence]",
                "2026-10-26T02:30:00+01:00  (2026-10-26T01:30:00Z)",
            ],
            id="fall-back-both",
        ),
        pytest.param(
            ["--from", "2026-03-28T12:00:00Z"],
            [
                "2026-03-29T03:00:00+02:00  (2026-03-29T01:00:00Z)  [02:30 skipped; ran at 03:00]",
                "2026-03-30T02:30:00+02:00  (2026-03-30T00:30:00Z)",
                "2026-03-31T02:30:00+02:00  (2026-03-31T00:30:00Z)",
            ],
            id="spring-forward-run-at-next-valid-time",
        ),
        pytest.param(
            ["--from", "2026-03-28T12:00:00Z", "--skipped-time", "Skip"],
            [
                "2026-03-29T02:30:00 does not exist in Europe/Berlin: no fire (--skipped-time Skip)",
                "2026-03-30T02:30:00+02:00  (2026-03-30T00:30:00Z)",
                "2026-03-31T02:30:00+02:00  (2026-03-31T00:30:00Z)",
                "2026-04-01T02:30:00+02:00  (2026-04-01T00:30:00Z)",
            ],
            id="spring-forward-skip",
        ),
    ],
)
def test_next_from_an_instant_marks_what_daylight_saving_did(flags: list[str], expected: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([*NEXT_BERLIN, *flags]) == 0
    assert capsys.readouterr().out.splitlines() == ["At 02:30 every day", *expected]


def test_version_is_the_installed_distributions(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"stargraph {importlib.metadata.version('stargraph')}\n"
