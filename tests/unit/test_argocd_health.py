"""The Argo CD health checks in deploy/argocd/, run as Argo CD runs them, on every case of their health_test.yaml.

Argo CD (util/lua in argoproj/argo-cd) evaluates an argocd-cm health script in gopher-lua, a Lua 5.1, with only the
base and table libraries and an `os` reduced to `time` and `date`: no `string`, `math` or `io`, so no string
methods either. The object is the global `obj`, decoded from its JSON (objects and arrays become tables, arrays from
index 1, numbers Lua numbers, null nil), and the table the chunk returns is read as `{status, message}`.
`evaluate` does the same with lupa's Lua 5.1, so a script that leans on a library Argo CD withholds fails here.

The cases are Argo CD's own layout (health_test.yaml naming testdata/ objects); each runs the script the argocd-cm
patch holds for the object's kind, which is what users install.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "deploy" / "argocd"
PATCH = ARGOCD / "argocd-cm-patch.yaml"
KEY_PREFIX = "resource.customizations.health."
# The script directory of each stargraph.io kind (hack/sync-argocd-cm.sh writes the same pairs into the patch).
SCRIPTS = {"CronTrigger": "trigger", "WebhookTrigger": "trigger", "Run": "run"}
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

# The chunk runs in an environment of what Argo CD opens for argocd-cm scripts: the base functions a script has a
# use for, `table`, and `os` with `time` and `date` only. Clearing the string metatable's __index removes string
# methods ("x"):upper(), which gopher-lua only has once the string library is opened.
_SANDBOX = """
function(source, obj)
  local chunk = assert(loadstring(source, "=health.lua"))
  local env = {obj = obj, table = table, os = {time = os.time, date = os.date}}
  for _, name in ipairs({"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print",
      "rawequal", "rawget", "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "unpack",
      "xpcall"}) do
    env[name] = _G[name]
  end
  env._G = env
  getmetatable("").__index = nil
  setfenv(chunk, env)
  return chunk()
end
"""


def to_lua(lua: lua51.LuaRuntime, value: Any) -> Any:
    """`value` as Argo CD hands it to Lua: mappings and lists become tables (lists from index 1), None is nil."""
    if isinstance(value, dict):
        return lua.table_from({key: to_lua(lua, item) for key, item in value.items() if item is not None})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, item) for item in value])
    if value is None or isinstance(value, bool | int | float | str):
        return value
    # A YAML timestamp left unquoted loads as a datetime; the apiserver's JSON would have given Argo CD a string.
    raise TypeError(f"{value!r} ({type(value).__name__}) is not a JSON value; quote it in the fixture")


def evaluate(script: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The health `script` gives `obj`, as `{status, message}`."""
    lua = lua51.LuaRuntime()
    result = lua.eval(_SANDBOX)(script, to_lua(lua, obj))
    # Argo CD refuses anything but a table, and reads an unknown status as Unknown: both are bugs of the script.
    assert lua51.lua_type(result) == "table", f"the script returned {result!r}, not a table"
    health = {"status": result["status"], "message": result["message"]}
    assert health["status"] in HEALTH_STATUSES, f"{health['status']!r} is not an Argo CD health status"
    return health


def patch_data() -> dict[str, str]:
    data: dict[str, str] = yaml.safe_load(PATCH.read_text(encoding="utf-8"))["data"]
    return data


def script_for(obj: dict[str, Any]) -> str:
    """The script argocd-cm holds for `obj`: Argo CD's key is resource.customizations.health.<group>_<kind>."""
    group = obj["apiVersion"].split("/")[0]
    return patch_data()[f"{KEY_PREFIX}{group}_{obj['kind']}"]


def load_cases() -> list[Any]:
    cases = []
    for tests in sorted(ARGOCD.glob("*/health_test.yaml")):
        for case in yaml.safe_load(tests.read_text(encoding="utf-8"))["tests"]:
            path = tests.parent / case["inputPath"]
            cases.append(pytest.param(path, case["healthStatus"], id=f"{tests.parent.name}/{path.stem}"))
    return cases


CASES = load_cases()


@pytest.mark.parametrize(("path", "expected"), CASES)
def test_health(path: Path, expected: dict[str, str]) -> None:
    obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert evaluate(script_for(obj), obj) == expected


def test_every_testdata_object_is_a_case_and_every_kind_has_cases() -> None:
    objects = set(ARGOCD.glob("*/testdata/*.yaml"))
    cased = {param.values[0] for param in CASES}
    assert objects - cased == set(), "testdata objects that no health_test.yaml names"
    kinds = {yaml.safe_load(path.read_text(encoding="utf-8"))["kind"] for path in cased}
    assert kinds == set(SCRIPTS)


def test_the_argocd_cm_patch_holds_exactly_the_scripts() -> None:
    patch = yaml.safe_load(PATCH.read_text(encoding="utf-8"))
    # Only `data`: `kubectl patch` with this file then adds the three keys and changes nothing else of argocd-cm.
    assert set(patch) == {"data"}
    expected = {
        f"{KEY_PREFIX}stargraph.io_{kind}": (ARGOCD / directory / "health.lua").read_text(encoding="utf-8")
        for kind, directory in SCRIPTS.items()
    }
    assert patch["data"] == expected, f"{PATCH} differs from deploy/argocd/*/health.lua: run hack/sync-argocd-cm.sh"


def probe(expression: str) -> str:
    """The message of a script that reports `tostring(expression)`."""
    script = f'local hs = {{status = "Healthy", message = tostring({expression})}}\nreturn hs\n'
    message: str = evaluate(script, {"kind": "Run"})["message"]
    return message


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ('string.upper("x")', "global 'string'"),
        ('("x"):upper()', "attempt to index a string value"),
        ("math.floor(1.5)", "global 'math'"),
        ('io.write("x")', "global 'io'"),
        ('os.getenv("HOME")', "field 'getenv'"),
    ],
)
def test_a_library_argo_cd_withholds_is_missing_here_too(expression: str, error: str) -> None:
    with pytest.raises(lua51.LuaError, match=re.escape(error)):
        probe(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [('table.concat({"a", "b"}, ",")', "a,b"), ("type(os.time())", "number"), ('type(os.date("!%Y"))', "string")],
)
def test_what_argo_cd_opens_is_there(expression: str, message: str) -> None:
    assert probe(expression) == message
