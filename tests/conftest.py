import atexit
import faulthandler
import functools
import importlib
import json
import logging
import math
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import traceback
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

# One BLAS thread in each test process, as mlplab.run has in each run: the test run has a
# process per core already (pytest -n auto), and more threads only wait on each other (the
# tests' matrices are small; OpenBLAS's threads cost more than they save, many times more
# when the cores are busy).
threadpool_limits(limits=1, user_api="blas")


def dead_pid() -> int:
    """The pid of a process of this host that has ended (and was reaped)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def central_differences(net, X, Y, P, h=1e-6):
    """(C(θ+h) − C(θ−h)) / 2h of the batch-mean loss (mini-batch statistics) for every entry θ
    of the parameter array P, changed in place and restored."""
    G = np.zeros_like(P)
    for i in np.ndindex(P.shape):
        old = P[i]
        P[i] = old + h
        up = net.loss_value(X, Y)
        P[i] = old - h
        down = net.loss_value(X, Y)
        P[i] = old
        G[i] = (up - down) / (2 * h)
    return G


@pytest.fixture
def numerical():
    """The finite-difference gradient of a parameter array: ``numerical(net, X, Y, P)``."""
    return central_differences


# ``python -c FAULTY ...`` is ``python -m mlplab ...`` with the fault of tests/faults/sitecustomize.py
# that MLPLAB_FAULT names in its environment injected in this process; by default ``backward``: the
# 3rd backward pass of every run whose first hidden layer has 5 units raises. For runs in this
# process (a single run, or hydra/launcher=basic): a genuine failure inside a run, not bad input.
FAULTY = f"""
import os, runpy
os.environ.setdefault("MLPLAB_FAULT", "backward")
runpy.run_path({str(Path(__file__).parent / "faults" / "sitecustomize.py")!r})
from mlplab.cli import entry
entry()
"""


# -- commands in a forked child of the test process ------------------------------------------------
class Forked:
    """``python -m module args`` (or ``python -c code args``) run in a forked child of the test
    process, which has NumPy, Hydra and mlplab imported already: what a new interpreter does,
    without its start-up (about 0.7 s of CPU). Used like ``subprocess.Popen`` with stdout and
    stderr on pipes: ``pid``, ``poll()``, ``wait(timeout)``, ``communicate(timeout)``,
    ``returncode``.

    The child starts as a new interpreter would: SIGINT raises KeyboardInterrupt, ``env`` is
    added to its environment, the warning filters, logging and exit handlers are a new
    interpreter's, not the test run's; ``new_session`` makes it the leader of a process group
    of its own (``os.killpg`` reaches its workers, as with ``start_new_session``). It ends as
    an interpreter does: its threads joined, its exit handlers run, the exit code (or a signal)
    is the child's exit status."""

    def __init__(self, module, args, cwd, env=None, code=None, new_session=False):
        import mlplab.cli  # noqa: F401  (imported once here, not in every child)

        if module:
            importlib.import_module(module)  # its imports too (an analysis command's plotting)
        _warm_hydra()
        self.args = [code and "-c" or module, *args]
        self.returncode = None
        pipes = [os.pipe(), os.pipe()]
        self.pid = os.fork()
        if self.pid == 0:  # the child: becomes the command, never returns
            _become(module, code, list(args), cwd, env, new_session, pipes)
        self._out = {}
        self._readers = []
        for (r, w), key in zip(pipes, ("stdout", "stderr")):
            os.close(w)
            self._readers.append(threading.Thread(target=self._drain, args=(r, key), daemon=True))
            self._readers[-1].start()

    def _drain(self, fd, key):
        with open(fd, closefd=True) as f:
            self._out[key] = f.read()

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.005)
        return self.returncode

    def communicate(self, timeout=None):
        self.wait(timeout)
        for t in self._readers:
            t.join(timeout)
        return self._out.get("stdout", ""), self._out.get("stderr", "")


@functools.cache
def _warm_hydra():
    """Compose mlplab's config once in the test process (its global state left as it was), so
    that every forked command finds what Hydra and OmegaConf build on first use and keep (the
    parsers of overrides and interpolations, the config schema) ready: a third of the CPU of a
    command that stops at a bad value."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from mlplab.cli import CONF_DIR

    if GlobalHydra.instance().is_initialized():
        return
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["depth=1", "++debug=false"], return_hydra_config=True)
        OmegaConf.to_yaml(cfg)
    OverridesParser.create().parse_overrides(["depth=1,2", "train.lr=0.5", "activation=relu,tanh", "++x=1"])


def _become(module, code, args, cwd, env, new_session, pipes):
    """The forked child's life: set up as a new interpreter, run the command, exit."""
    status = 1
    try:
        if new_session:
            os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for (r, w), fd in zip(pipes, (1, 2)):
            os.close(r)
            os.dup2(w, fd)
            os.close(w)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        faulthandler.disable()
        os.chdir(cwd)
        os.environ.update(env or {})
        warnings.resetwarnings()  # a new interpreter's warning filters, not the test run's
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        for handler in logging.root.handlers[:]:  # the test run's log capture
            logging.root.removeHandler(handler)
        logging.root.setLevel(logging.WARNING)
        atexit._clear()  # the test run's exit handlers are not the command's
        if code is not None:  # as `python -c`: a __main__ module of its own, without a file
            sys.argv = ["-c", *args]
            main = types.ModuleType("__main__")
            sys.modules["__main__"] = main
            exec(compile(code, "<string>", "exec"), main.__dict__)
        else:
            sys.argv = [module, *args]
            sys.modules.pop(module, None)  # run as __main__, as `python -m` does, not the imported copy
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        traceback.print_exc()
        status = -signal.SIGINT  # an uncaught Ctrl-C ends an interpreter by SIGINT
    except BaseException:  # noqa: BLE001 - an uncaught exception: traceback, exit code 1
        traceback.print_exc()
    finally:
        try:  # the end of an interpreter: join its threads, run its exit handlers
            threading._shutdown()
            atexit._run_exitfuncs()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            if status == -signal.SIGINT:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGINT)
            os._exit(status)


def forked(module, args, cwd, timeout=120, **kw) -> subprocess.CompletedProcess:
    """``Forked`` run to its end, as ``subprocess.run(..., capture_output=True, text=True)``."""
    p = Forked(module, args, cwd, **kw)
    out, err = p.communicate(timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


# -- scheduling on xdist's workers ---------------------------------------------------------------
# With -n and no --dist, tests are distributed as with --dist loadgroup: each test to the next
# free worker, but the tests of a group (an xdist_group mark) to one worker together. A module's
# tests that use one of its module-scoped fixtures (results folders made by real runs) form a
# group, so that the fixture is made once, not once per worker. The slow tests start first, so
# that no long test is left for the end while the other worker is idle.
@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "loadgroup"


def _module_fixtures(item) -> bool:
    """Whether ``item`` uses a module-scoped fixture of its own module."""
    info = getattr(item, "_fixtureinfo", None)
    module = item.nodeid.split("::")[0]
    return info is not None and any(
        d.scope == "module" and d.baseid == module for defs in info.name2fixturedefs.values() for d in defs
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if _module_fixtures(item) and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: slow ones first
    _quickest_first_under_mutation(items)


def _quickest_first_under_mutation(items):
    """Under mutation testing (``make mutation``: mutmut sets MUTANT_UNDER_TEST and runs the
    tests in ``mutants/``), the quickest tests first: mutmut stops at the first failing test,
    so a mutant that a quick test kills costs only that test."""
    if "MUTANT_UNDER_TEST" not in os.environ:
        return
    try:
        durations = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: durations.get(item.nodeid, math.inf))


class _Groups:
    """The groups to xdist's workers. A worker learns from the controller that the run is
    distributed by group (a worker parses the command line itself, without the --dist chosen
    above), and tells the controller each test's group by the suffix ``@group`` of its node id.
    pytest-xdist's worker adds that suffix, but through an attribute that pytest >= 9.2 no
    longer reads (pytest-xdist issue #1386), and only for a --dist given on the command line:
    this adds it where it is missing."""

    def pytest_configure_node(self, node):  # on the controller
        node.workerinput["loadgroup"] = node.config.getvalue("dist") == "loadgroup"

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):  # on a worker, after xdist's own
        if not getattr(config, "workerinput", {}).get("loadgroup"):
            return
        for item in items:
            names = {
                str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")
            }
            suffix = "@" + "_".join(sorted(names))
            if not names or item.nodeid.endswith(suffix):
                continue
            try:
                from _pytest.nodeid import NodeId  # pytest >= 9.2: structured node ids
            except ImportError:
                item._nodeid = item.nodeid + suffix
            else:
                item._id = NodeId.parse(item.nodeid + suffix)


def pytest_configure(config):
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_Groups(), "mlplab-xdist-groups")
