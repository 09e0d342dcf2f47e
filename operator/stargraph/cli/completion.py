"""`stargraph completion bash|zsh`: shell completion, answered from the argparse parser itself.

The scripts are thin: at each TAB they hand the words typed so far to `complete()`, which walks `build_parser()` —
so every command, flag and choice is completed as the installed stargraph defines it, a new command included,
without regenerating anything. Candidates: subcommand names, the flags of the command being typed, an option's
`choices`, a positional's `choices`, and for a `KIND/NAME` argument the kinds it takes (`crontrigger/`,
`webhooktrigger/`, without a trailing space). Where a file may go (an option's value without choices, `convert`'s
sources), the shell adds file names.

`kubectl stargraph ...` is completed by kubectl itself (1.26 and later): for a plugin `kubectl-stargraph` it runs
the executable `kubectl_complete-stargraph` found on PATH with the words after the plugin's name, and reads one
candidate per line and a final `:<directive>` line (Cobra's protocol: 2 = no space after it, 4 = no file names).
stargraph installs that executable as a console script (`kubectl_complete`); the bash and zsh scripts speak the
same protocol to the same function, so there is one implementation of completion.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

__all__ = ["complete", "kubectl_complete", "register"]

NO_SPACE = 2
NO_FILES = 4
_FILES = 0


def complete(parser: argparse.ArgumentParser, words: Sequence[str]) -> tuple[list[str], int]:
    """Candidates for the last of `words` (the arguments after the program's name; the last one may be empty)
    and the Cobra directive: NO_SPACE, NO_FILES, or neither (file names may go there too)."""
    *done, current = words or [""]
    command, positionals, expecting = parser, 0, None
    for word in done:
        if expecting is not None:
            expecting = None
            continue
        option = _option(command, word)
        if option is not None:
            expecting = option if option.nargs != 0 and "=" not in word else None
            continue
        subcommands = _subcommands(command)
        if subcommands and word in subcommands:
            command, positionals = subcommands[word], 0
        elif not word.startswith("-"):
            positionals += 1
    if expecting is not None:
        return _values(expecting, current)
    if current.startswith("-"):
        flags = sorted(flag for action in command._actions for flag in action.option_strings)
        return [flag for flag in flags if flag.startswith(current)], NO_FILES
    subcommands = _subcommands(command)
    if subcommands:
        return [name for name in subcommands if name.startswith(current)], NO_FILES
    takes = [action for action in command._actions if not action.option_strings]
    if positionals >= len(takes) and not (takes and takes[-1].nargs in ("+", "*")):
        return [], NO_FILES  # every positional is given
    return _values(takes[min(positionals, len(takes) - 1)], current)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option(parser: argparse.ArgumentParser, word: str) -> argparse.Action | None:
    flag = word.split("=", 1)[0] if word.startswith("--") else word
    return parser._option_string_actions.get(flag) if word.startswith("-") else None


def _values(action: argparse.Action, current: str) -> tuple[list[str], int]:
    if action.choices is not None:
        return [str(choice) for choice in action.choices if str(choice).startswith(current)], NO_FILES
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    kinds = [kind for kind in _kinds(metavar) if kind.startswith(current)]
    if "FILE" in metavar.split("|"):  # files or KIND/NAME (convert): both
        return kinds, NO_SPACE if kinds else _FILES
    if "/NAME" in metavar:
        return kinds, NO_SPACE | NO_FILES
    return [], _FILES


def _kinds(metavar: str) -> list[str]:
    """`KIND/NAME` takes every built-in kind, `crontrigger/NAME` only that one, `FILE|cronjob/NAME` cronjob/."""
    from stargraph.controller.kinds import BUILT_IN_KINDS

    kinds = []
    for alternative in metavar.split("|"):
        kind, sep, _ = alternative.partition("/NAME")
        if not sep:
            continue
        kinds += [f"{k.lower()}/" for k in BUILT_IN_KINDS] if kind == "KIND" else [f"{kind}/"]
    return kinds


def kubectl_complete(argv: Sequence[str] | None = None) -> int:
    """`kubectl_complete-stargraph WORD...`: the candidates for the last word, one a line, then `:<directive>`."""
    from stargraph.cli import build_parser

    candidates, directive = complete(build_parser(), list(sys.argv[1:] if argv is None else argv))
    print("\n".join([*candidates, f":{directive}"]))
    return 0


_BASH = """\
# bash completion for stargraph and kubectl-stargraph; generated by `stargraph completion bash`.
# Each TAB asks stargraph itself (the same answers kubectl_complete-stargraph gives `kubectl stargraph`).
_stargraph_complete() {
    local cur=${COMP_WORDS[COMP_CWORD]} reply directive candidate
    local -a candidates=()
    reply=$(%(engine)s "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return 0
    directive=${reply##*:}
    while IFS= read -r candidate; do
        [[ $candidate == :* || -z $candidate ]] || candidates+=("$candidate")
    done <<< "$reply"
    COMPREPLY=("${candidates[@]}")
    if (( directive & 2 )); then
        compopt -o nospace 2>/dev/null
    fi
    if (( ! (directive & 4) )); then  # file names are welcome here too
        compopt -o filenames 2>/dev/null
        while IFS= read -r candidate; do
            COMPREPLY+=("$candidate")
        done < <(compgen -f -- "$cur")
    fi
}
complete -F _stargraph_complete stargraph kubectl-stargraph
"""

_ZSH = """\
#compdef stargraph kubectl-stargraph
# zsh completion for stargraph and kubectl-stargraph; generated by `stargraph completion zsh`.
# Each TAB asks stargraph itself (the same answers kubectl_complete-stargraph gives `kubectl stargraph`).
_stargraph() {
    local reply directive
    local -a candidates
    reply=$(%(engine)s "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    candidates=("${(@f)reply}")
    directive=${candidates[-1]#:}
    candidates=("${(@)candidates[1,-2]}")
    if (( ${#candidates} )); then
        if (( directive & 2 )); then
            compadd -S '' -- "${candidates[@]}"
        else
            compadd -- "${candidates[@]}"
        fi
    fi
    if (( ! (directive & 4) )); then  # file names are welcome here too
        _files
    fi
}
if [[ $funcstack[1] == _stargraph ]]; then  # autoloaded from $fpath: this file is the function's first call
    _stargraph "$@"
else
    compdef _stargraph stargraph kubectl-stargraph
fi
"""


def cmd_completion(args: argparse.Namespace) -> int:
    """Print the completion script for the shell."""
    # The interpreter that runs this stargraph answers the TABs, whatever PATH holds when they come; -P keeps the
    # current directory off its import path.
    engine = " ".join(
        shlex.quote(part)
        for part in (
            sys.executable,
            "-P",
            "-c",
            "from stargraph.cli.completion import kubectl_complete; kubectl_complete()",
        )
    )
    print((_BASH if args.shell == "bash" else _ZSH) % {"engine": engine}, end="")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    completion = commands.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="bash: `source <(stargraph completion bash)` in ~/.bashrc. zsh: `source <(stargraph completion "
        "zsh)` in ~/.zshrc after compinit, or save it as _stargraph in a directory of $fpath. `kubectl stargraph` "
        "is completed by kubectl (1.26+) through the kubectl_complete-stargraph executable installed with stargraph.",
    )
    completion.add_argument("shell", choices=["bash", "zsh"])
    completion.set_defaults(func=cmd_completion)
