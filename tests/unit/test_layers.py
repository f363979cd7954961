"""STYLE.md "Who may import whom", checked on the source with ``ast`` (imports inside functions count).

Every module of ``river_supervisor`` sits in a layer and imports only from lower layers, apart from the
same-layer edges listed in ``SAME_LAYER`` (each with its reason). The one-owner rules (sentry_sdk, os.environ,
print) and the import-time rules (a cheap package, a side-effect-free ``worker``) are checked here too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "supervisor" / "river_supervisor"
ROOT = "__init__"  # the package itself: ``from . import __version__``, ``import river_supervisor``

LAYERS: dict[int, set[str]] = {
    # (1) pure: no psycopg, no sentry_sdk; every plugin imports ``plugins`` (and through it this layer)
    1: {
        ROOT,
        "errors",
        "config",
        "config_settings",
        "config_values",
        "redaction",
        "durations",
        "job_options",
        "sql",
        "plugins",
        "plugin_job",  # what a handler sees and may raise (part of the plugin API, re-exported by plugins)
        "plugin_decls",  # a plugin's declarations and their checks (ditto)
        "declared_job",  # enqueueing through a declaration (ditto)
        "unique",  # pure (hashlib); plugins declare a kind's unique options with its UniqueOpts
        "cron",
        "schedules",
        "slot_plan",  # which due slots a pass enqueues under the missed policy (schedules re-exports it)
        "backoff",
        "logs",
        "job_stats",
        "processes",  # OS process primitives for the parent and its workers (prctl, pidfd, groups)
        "storable",  # what PostgreSQL can store: outcomes' texts made so, args refused otherwise
        "drift",  # what drift is: fingerprints, comparison, orphans (its reads and its service are above)
    },
    # (2) one database seam and the queue core; ``discovery`` adds stevedore, ``testing`` runs handlers inline
    2: {
        "db",
        "schema",
        "queue",
        "insert",
        "job_row",
        "retry",
        "completer",
        "client",
        "notifier",
        "discovery",
        "testing",
        "queues",  # River's river_queue rows: report, pause, resume, reap
        "executor",  # running one job into an outcome (a worker's, and testing.run_job's)
        "fates",  # what a dead worker's jobs become (the queue core's rule, the parent's call)
    },
    # (3) leadership and the leader-only services; alerts (the only sentry_sdk user); joblog, the
    # worker's line per finished job (above the queue core, whose outcomes it names)
    3: {
        "leadership",  # the elector's state machine; its parts below, re-exported from it
        "leader_terms",  # Term, NodeIdentity, Timings (pure values)
        "leader_events",  # LeadershipEvent, its one wording, the elector's log lines
        "leader_fence",  # fenced_transaction
        "leader_lease",  # the elector's connections and the lease's statements (its base class)
        "nodes",
        "serving",
        "periodic",
        "drift_reads",  # drift as the database shows it, for status and the metrics
        "drift_watch",  # the leader's service that records drift
        "leader_services",  # the LeaderService protocol and the runner of their ticks
        "node_heartbeat",  # this host's node row and queue rows
        "manifest",
        "maintenance",
        "alerts",
        "alert_events",  # what each Sentry event says (pure; alerts sends them)
        "joblog",
        "crons",  # Sentry Crons check-ins around a monitored schedule's runs (through alerts)
    },
    # (4) processes: the worker child, the parent loop
    4: {
        "worker",
        "worker_spec",
        "children",
        "fate_ledger",
        "worker_lifecycle",
        "duties",
        "supervisor",
        "metrics",
        "reload",
    },
    # (5) entry points; every ``commands.*`` module is here too (see ``layer_of``)
    5: {
        "status",
        "cli",
        "commands",
        "bench",  # runs the bench's phases in order; its parts below
        "bench_options",  # BenchOptions, BenchResult, BenchError
        "bench_schema",  # the scratch schema
        "bench_process",  # the supervisor under test
        "bench_phases",  # the measurements
        "benchjobs",
        "embedded",
        "__main__",
    },
}

# Same-layer imports that are allowed, importer -> imported. Anything else within a layer fails.
SAME_LAYER: dict[str, set[str]] = {
    # layer 1: the package lazily re-exports the plugin API; the pure modules share errors and durations
    ROOT: {"plugins", "unique", "errors"},  # and the pure parts of the enqueue API (UniqueOpts, InvalidJob)
    "config": {"errors", "durations", "config_settings", "config_values", "redaction"},
    # config is split: the settings table (and the reference rendered from it), the kinds of value, redaction
    "config_settings": {"config_values", "durations", "job_options", "schedules"},  # the policy lists
    "config_values": {"durations", "redaction", "job_options"},  # a bad URL or DSN is echoed redacted
    # job_options owns the queue-name and kind rules that config, plugins and insert all apply
    # plugins check policies with schedules' lists; plugin_decls reads durations as the file does
    "plugins": {"job_options", "schedules", "unique", "plugin_job", "plugin_decls", "declared_job"},
    "plugin_decls": {"durations", "job_options", "unique", "plugin_job"},
    "declared_job": {"plugin_decls", "plugin_job"},
    "unique": {"errors"},
    "schedules": {"errors", "cron", "durations", "slot_plan"},  # an `every` schedule is shown as a duration
    "slot_plan": {"cron"},  # slots come from the schedule cron builds
    "cron": {"durations"},  # River reads @every with Go's duration grammar, which durations owns
    "drift": {"schedules"},  # a manifest lists the effective schedules
    # layer 2: ``queue`` is the facade over the queue core's parts, which share row decoding and retry rules
    "queue": {"completer", "insert", "job_row", "retry", "fates"},
    "fates": {"job_row", "retry"},
    "insert": {"job_row"},
    "client": {"insert"},  # the application's enqueue API is a front to the queue core's insert
    "completer": {"retry"},
    # discovery loads plugins; testing runs a discovered plugin's handler inline
    "testing": {"discovery", "executor"},
    "executor": {"queue"},  # outcomes and the fetched rows' columns come from the queue core
    # layer 3: leadership is split by concern (values, wording, fence, connections, state machine)
    "leadership": {"leader_terms", "leader_events", "leader_fence", "leader_lease"},
    "leader_events": {"leader_terms"},
    "leader_fence": {"leader_terms"},
    "leader_lease": {"leader_terms", "leader_events"},
    # STYLE allows leader-only services to use leadership's Term and fenced transaction
    "periodic": {"leadership"},
    "maintenance": {"leadership", "leader_services"},  # the services satisfy its protocol
    "drift_reads": {"nodes"},  # the live nodes' manifests are on their rows (nodes owns them)
    "drift_watch": {"leadership", "nodes"},  # fenced writes of the drift row and the nodes' flags
    "leader_services": {"leadership"},  # services run in a term (Term)
    "node_heartbeat": {"nodes", "leadership"},  # the node row (nodes owns it), named by NodeIdentity
    "nodes": {"leadership"},
    "serving": {"nodes"},  # what each live node serves is on its node row
    # alerts sends what alert_events builds; both name leader_events.LeadershipEvent (a type-checking
    # import only), whose own message the event carries; a drift's differences are worded with
    # drift.describe (drift is pure: a lower layer)
    "alerts": {"alert_events", "leader_events"},
    "alert_events": {"leader_events"},
    "crons": {"alerts"},  # check-ins go through the only Sentry user
    # layer 4: STYLE: supervisor starts workers (through worker_lifecycle); children and duties are its parts
    "supervisor": {"worker_lifecycle", "children", "fate_ledger", "duties", "metrics", "reload"},
    # the supervisor's worker processes: started from worker's entry point with a worker_spec
    "worker_lifecycle": {"worker", "worker_spec", "children", "fate_ledger"},
    "fate_ledger": {"children"},  # it writes what a WorkerHandle knows of its dead worker
    "worker": {"worker_spec"},  # the spec the parent builds and the worker runs with
    # layer 5: the entry points share helpers; commands call the layer-5 libraries they front
    "__main__": {"cli"},
    "bench": {"bench_options", "bench_schema", "bench_process", "bench_phases"},
    # the bench enqueues benchjobs' no-op kind into benchjobs' queue, which its supervisor serves
    "bench_phases": {"benchjobs", "bench_options", "bench_process"},
    "bench_process": {"benchjobs", "bench_options"},
    "bench_schema": {"bench_options"},
    "status": {"benchjobs"},  # check does not ask for a [queues] entry for the bench's own queue
}
# Upward imports allowed only inside a function (never at import time), importer -> imported: the
# package's lazy ``__getattr__`` re-exports the application API (enqueue, on layer 2), and a declared
# job's ``charge.enqueue(conn, ...)`` calls it. Importing layer 1 stays cheap: see
# ``test_importing_the_package_and_layer_one_is_cheap``; ``test_lazy_upward_imports_are_in_functions``.
LAZY_UPWARD: dict[str, set[str]] = {ROOT: {"client"}, "declared_job": {"client"}}
# Layer 2 is built on its one database seam: every layer-2 module may use ``db``.
DB_SEAM = "db"
# ``commands.*`` may import each other, the layer-5 libraries they are the command of, and ``cli``'s shared
# argument helpers (cli loads the commands with importlib, so this is no import cycle at load time).
COMMANDS_MAY_IMPORT = {"commands", "status", "bench", "embedded", "cli"}

QUEUE_CORE = {"queue", "insert", "job_row", "retry", "completer", "unique", "fates"}

# One owner each (STYLE "One owner each"). Exceptions are named and explained.
SENTRY_OWNERS = {"alerts"}
ENVIRON_OWNERS = {
    "config",
    # bench_process starts a supervisor under test and copies the environment only to drop DATABASE_URL
    # and SENTRY_DSN from it (the child must use the bench's scratch config): it reads no setting.
    "bench_process",
}
PRINT_OWNERS = {
    "cli",
    "commands",
    "bench",
    # config's ``if __name__ == "__main__"`` block prints the settings reference (docs/configuration.md);
    # importing config prints nothing.
    "config",
}


@dataclass
class Module:
    name: str
    path: Path
    internal: set[str] = field(default_factory=set)  # river_supervisor modules imported
    eager: set[str] = field(default_factory=set)  # those imported outside any function (at import time)
    external: set[str] = field(default_factory=set)  # top-level names of other packages imported
    environ: list[int] = field(default_factory=list)  # lines reading os.environ / os.getenv
    prints: list[int] = field(default_factory=list)  # lines calling print()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or ROOT


@cache
def modules() -> dict[str, Module]:
    found = {_module_name(path): Module(_module_name(path), path) for path in sorted(PACKAGE.rglob("*.py"))}
    for module in found.values():
        _scan(module, set(found))
    return found


def _resolve(parts: list[str], known: set[str]) -> str:
    """The internal module a dotted path inside the package names (an attribute resolves to its module)."""
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts = parts[:-1]
    return ROOT


def _scan(module: Module, known: set[str]) -> None:
    is_package = module.path.name == "__init__.py"
    own = [] if module.name == ROOT else module.name.split(".")
    package = own if is_package else own[:-1]
    tree = ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))
    in_functions = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found = Module(module.name, module.path)  # this statement's targets
            if isinstance(node, ast.Import):
                for alias in node.names:
                    _add_absolute(found, alias.name.split("."), [], known)
            elif node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
                for alias in node.names:
                    found.internal.add(_resolve([*target, alias.name], known))
            else:
                _add_absolute(found, (node.module or "").split("."), [a.name for a in node.names], known)
            module.internal |= found.internal
            module.external |= found.external
            if id(node) not in in_functions:
                module.eager |= found.internal
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            module.prints.append(node.lineno)
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in {"environ", "getenv", "environb", "getenvb"}
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            module.environ.append(node.lineno)
    for node in ast.walk(tree):  # ``from os import environ, getenv``
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and {a.name for a in node.names} & {"environ", "getenv", "environb", "getenvb"}
        ):
            module.environ.append(node.lineno)
    module.internal.discard(module.name)
    module.eager.discard(module.name)


def _add_absolute(module: Module, parts: list[str], names: list[str], known: set[str]) -> None:
    if parts[0] != "river_supervisor":
        module.external.add(parts[0])
        return
    for name in names or [""]:
        module.internal.add(_resolve([*parts[1:], *([name] if name else [])], known))


def layer_of(name: str) -> int:
    key = "commands" if name.split(".")[0] == "commands" else name
    for layer, members in LAYERS.items():
        if key in members:
            return layer
    raise KeyError(name)


def _owner(name: str) -> str:
    return "commands" if name.split(".")[0] == "commands" else name


def test_the_scan_sees_the_package() -> None:
    found = modules()
    assert {"errors", "worker", "supervisor", "commands.run", "sql", ROOT} <= set(found)
    assert {"worker_lifecycle", "alerts", "db", "fate_ledger"} <= found["supervisor"].internal
    assert {"config", "db", "schema"} <= found["commands.migrate"].internal  # ``from .. import x as y``
    assert "psycopg" in found["db"].external
    assert ROOT in found["cli"].internal  # ``from . import __version__``


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for name in modules():
        try:
            layer_of(name)
        except KeyError:
            unplaced.append(name)
    assert not unplaced, f"place these modules in LAYERS (STYLE.md 'Who may import whom'): {unplaced}"


def test_every_listed_module_exists() -> None:
    names = {_owner(name) for name in modules()}
    listed = set().union(*LAYERS.values())
    assert listed <= names, f"LAYERS lists modules that no longer exist: {sorted(listed - names)}"
    stale = {f"{a} -> {b}" for a, bs in SAME_LAYER.items() for b in bs if b not in names or a not in names}
    assert not stale, f"SAME_LAYER lists modules that no longer exist: {sorted(stale)}"


def test_imports_go_down_the_layers() -> None:
    wrong = []
    for module in modules().values():
        mine = layer_of(module.name)
        for target in sorted(module.internal):
            theirs = layer_of(target)
            if theirs < mine:
                continue
            if theirs == mine:
                if _owner(target) in SAME_LAYER.get(module.name, set()):
                    continue
                if _owner(module.name) == "commands" and _owner(target) in COMMANDS_MAY_IMPORT:
                    continue
                if mine == 2 and target == DB_SEAM:
                    continue
            if _owner(target) in LAZY_UPWARD.get(module.name, set()):
                continue  # function-local only: test_lazy_upward_imports_are_in_functions
            wrong.append(f"{module.name} (layer {mine}) imports {target} (layer {theirs})")
    assert not wrong, "imports must go down the layers:\n" + "\n".join(wrong)


def test_lazy_upward_imports_are_in_functions() -> None:
    """The upward allowances are for imports on first use only, never at import time, and are used."""
    found = modules()
    eager = [f"{a} -> {b}" for a, bs in LAZY_UPWARD.items() for b in sorted(bs) if b in found[a].eager]
    assert not eager, f"import these inside a function (they are above the importer's layer): {eager}"
    unused = [
        f"{a} -> {b}" for a, bs in LAZY_UPWARD.items() for b in sorted(bs) if b not in found[a].internal
    ]
    assert not unused, f"drop these LAZY_UPWARD entries: {unused}"


def test_same_layer_edges_are_all_used() -> None:
    """An allowance nobody needs any more is removed, so the list stays an honest record."""
    found = modules()
    unused = [f"{a} -> {b}" for a, bs in SAME_LAYER.items() for b in sorted(bs) if b not in found[a].internal]
    assert not unused, f"drop these SAME_LAYER entries: {unused}"


def test_layer_one_imports_neither_psycopg_nor_sentry() -> None:
    heavy = {"psycopg", "sentry_sdk", "stevedore", "multiprocess"}
    wrong = {m.name: sorted(m.external & heavy) for m in modules().values() if layer_of(m.name) == 1}
    assert not {k: v for k, v in wrong.items() if v}


def test_only_alerts_imports_sentry_sdk() -> None:
    users = {m.name for m in modules().values() if "sentry_sdk" in m.external}
    assert users <= SENTRY_OWNERS, f"only alerts imports sentry_sdk, also: {sorted(users - SENTRY_OWNERS)}"


def test_only_config_reads_the_environment() -> None:
    found = modules().values()
    wrong = {m.name: m.environ for m in found if m.environ and _owner(m.name) not in ENVIRON_OWNERS}
    assert not wrong, f"only config reads os.environ (module: lines): {wrong}"


def test_only_the_cli_prints() -> None:
    wrong = {m.name: m.prints for m in modules().values() if m.prints and _owner(m.name) not in PRINT_OWNERS}
    assert not wrong, f"only cli, commands and bench print (module: lines): {wrong}"


def test_config_prints_only_under_its_main_guard() -> None:
    """The named exception above: config's print() is in ``if __name__ == "__main__":`` and nowhere else."""
    tree = ast.parse((PACKAGE / "config.py").read_text(encoding="utf-8"))
    guarded = {
        call.lineno
        for node in tree.body
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
        for call in ast.walk(node)
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"
    }
    assert modules()["config"].prints == sorted(guarded)


@pytest.mark.parametrize("core", sorted(QUEUE_CORE))
def test_the_queue_core_raises_and_does_not_report(core: str) -> None:
    banned = {"cli", "supervisor", "alerts", "leadership"}
    assert not {_owner(t) for t in modules()[core].internal} & banned


def test_workers_never_touch_leadership() -> None:
    banned = {"leadership", "periodic", "maintenance", "supervisor", "duties"}
    assert not {_owner(t) for t in modules()["worker"].internal} & banned


def test_benchjobs_is_a_plugin() -> None:
    """benchjobs is loaded through its entry point like any plugin: it uses the plugin API only."""
    assert modules()["benchjobs"].internal <= {ROOT, "plugins"}
    assert not modules()["benchjobs"].external & {"psycopg", "sentry_sdk"}


def _run(code: str) -> str:
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_package_and_layer_one_is_cheap() -> None:
    pure = sorted(name for name in LAYERS[1] if name != ROOT)
    code = (
        "import sys, json, importlib\n"
        "import river_supervisor\n"
        "heavy = {'psycopg', 'sentry_sdk', 'stevedore', 'multiprocess'}\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "after_package = loaded()\n"
        f"for name in {pure!r}:\n"
        "    importlib.import_module('river_supervisor.' + name)\n"
        "print(json.dumps([after_package, loaded()]))\n"
    )
    after_package, after_layer_one = json.loads(_run(code))
    assert after_package == []
    assert after_layer_one == []


def test_importing_worker_has_no_side_effects() -> None:
    """The forkserver preloads ``worker``: importing it starts no thread and opens no connection."""
    code = (
        "import json, socket, threading\n"
        "import psycopg\n"
        "opened = []\n"
        "def refuse(*args, **kwargs):\n"
        "    opened.append(repr(args)[:80])\n"
        "    raise RuntimeError('connection at import time')\n"
        "psycopg.connect = refuse\n"
        "psycopg.Connection.connect = classmethod(refuse)\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "before = threading.active_count()\n"
        "import river_supervisor.worker\n"
        "print(json.dumps([before, threading.active_count(), opened]))\n"
    )
    before, after, opened = json.loads(_run(code))
    assert after == before
    assert opened == []
