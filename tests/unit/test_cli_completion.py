"""Shell completion: the engine over `build_parser()`, and the scripts sourced in a real bash and zsh and the real
kubectl's plugin completion asking it for candidates."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stargraph.cli import build_parser, main
from stargraph.cli.completion import NO_FILES, NO_SPACE, complete

BIN = Path(sys.executable).parent


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize(
    ("words", "candidates", "directive"),
    [
        (["h"], ["history"], NO_FILES),
        (["history", ""], ["crontrigger/"], NO_SPACE | NO_FILES),
        (["describe", ""], ["crontrigger/", "webhooktrigger/"], NO_SPACE | NO_FILES),
        (["describe", "w"], ["webhooktrigger/"], NO_SPACE | NO_FILES),
        (["run", "c"], ["crontrigger/"], NO_SPACE | NO_FILES),
        (["history", "crontrigger/nightly", "-o", ""], ["table", "json", "yaml"], NO_FILES),
        (["history", "-n", "team-a", "crontrigger/nightly", "--output", "j"], ["json"], NO_FILES),
        (["completion", ""], ["bash", "zsh"], NO_FILES),
        (["describe", "--k"], ["--kubeconfig"], NO_FILES),
        (["describe", "--kubeconfig", ""], [], 0),  # a file
        (["convert", "cronjob/x", ""], ["cronjob/"], NO_SPACE),  # nargs="+", and files too
        (["convert", "x.yaml", "cronjob/"], ["cronjob/"], NO_SPACE),
        (["describe", "crontrigger/x", ""], [], NO_FILES),  # nothing more is expected
    ],
)
def test_candidates_for_the_word_being_typed(words: list[str], candidates: list[str], directive: int) -> None:
    assert complete(build_parser(), words) == (candidates, directive)


def test_every_command_and_each_of_its_flags_comes_from_the_parser() -> None:
    parser = build_parser()
    names, _ = complete(parser, [""])
    assert names == list(subcommands(parser))
    for name, command in subcommands(parser).items():
        flags, _ = complete(parser, [name, "-"])
        assert flags == sorted(flag for action in command._actions for flag in action.option_strings), name
        assert "--help" in flags


def test_a_command_added_to_the_parser_is_completed_without_edits() -> None:
    parser = build_parser()
    assert complete(parser, ["backf"]) == (["backfill"], NO_FILES)
    assert complete(parser, ["backfill", "--max"]) == (["--max-runs"], NO_FILES)
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    rewind = commands.add_parser("rewind")
    rewind.add_argument("trigger", metavar="crontrigger/NAME")
    rewind.add_argument("--policy", choices=["Skip", "Replace"])
    assert complete(parser, ["rew"]) == (["rewind"], NO_FILES)
    assert complete(parser, ["rewind", "--p"]) == (["--policy"], NO_FILES)
    assert complete(parser, ["rewind", "--policy", ""]) == (["Skip", "Replace"], NO_FILES)
    assert complete(parser, ["rewind", ""]) == (["crontrigger/"], NO_SPACE | NO_FILES)


def test_kubectl_complete_prints_cobras_protocol(capsys) -> None:  # type: ignore[no-untyped-def]
    from stargraph.cli.completion import kubectl_complete

    assert kubectl_complete(["describe", ""]) == 0
    assert capsys.readouterr().out.splitlines() == ["crontrigger/", "webhooktrigger/", ":6"]


def script(shell: str, tmp_path: Path, capsys) -> Path:  # type: ignore[no-untyped-def]
    assert main(["completion", shell]) == 0
    path = tmp_path / f"stargraph.{shell}"
    path.write_text(capsys.readouterr().out)
    return path


BASH_ASK = """
source "$1"; shift
cd "$1"; shift
COMP_WORDS=(stargraph "$@"); COMP_CWORD=$#
_stargraph_complete
printf '%s\\n' "${COMPREPLY[@]}"
complete -p stargraph kubectl-stargraph
"""


def test_bash_sources_the_script_and_completes_from_the_parser(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bash = shutil.which("bash")
    assert bash is not None, "bash is part of the base system"
    path = script("bash", tmp_path, capsys)
    (tmp_path / "cronjobs.yaml").write_text("")

    def ask(*words: str) -> list[str]:
        done = subprocess.run(
            [bash, "--norc", "--noprofile", "-c", BASH_ASK, "ask", str(path), str(tmp_path), *words],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.splitlines()

    first = ask("hi")
    assert first[0] == "history"
    assert first[1:] == [
        "complete -F _stargraph_complete stargraph",
        "complete -F _stargraph_complete kubectl-stargraph",
    ]
    assert ask("describe", "")[:2] == ["crontrigger/", "webhooktrigger/"]
    assert ask("history", "crontrigger/nightly", "-o", "y")[0] == "yaml"
    assert ask("convert", "cron")[:2] == ["cronjob/", "cronjobs.yaml"]  # FILE|-|cronjob/NAME: both


ZSH_ASK = """
if [[ $1 == fpath ]]; then fpath=(${2:h} $fpath); fi
autoload -U compinit && compinit -u -D
if [[ $1 == source ]]; then source "$2"; fi
shift 2
cd "$1"; shift
print -r -- "registered:$_comps[stargraph]:$_comps[kubectl-stargraph]"
compadd() { print -r -- "compadd $*"; }
_files() { print -r -- "_files"; }
words=(stargraph "$@"); CURRENT=$(( $# + 1 ))
_stargraph
"""


@pytest.mark.parametrize("install", ["source", "fpath"])
def test_zsh_loads_the_script_and_completes_from_the_parser(install: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (apt-get install zsh)")
    functions = tmp_path / "functions"
    functions.mkdir()
    path = script("zsh", tmp_path, capsys).rename(functions / "_stargraph")  # the name $fpath needs

    def ask(*words: str) -> list[str]:
        done = subprocess.run(
            [zsh, "-f", "-c", ZSH_ASK, "ask", install, str(path), str(tmp_path), *words],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        return done.stdout.splitlines()

    assert ask("hi") == ["registered:_stargraph:_stargraph", "compadd -- history"]
    assert ask("describe", "")[1] == "compadd -S  -- crontrigger/ webhooktrigger/"  # no space after a kind
    assert ask("history", "crontrigger/x", "--output", "")[1] == "compadd -- table json yaml"
    assert ask("describe", "--kubeconfig", "")[1] == "_files"


def test_kubectl_completes_the_plugin_through_kubectl_complete_stargraph() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH")
    assert (BIN / "kubectl_complete-stargraph").exists(), "installed as a console script with the package"
    done = subprocess.run(
        [kubectl, "__complete", "stargraph", "history", "crontrigger/x", "-o", ""],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    assert done.stdout.splitlines() == ["table", "json", "yaml", ":4"]
