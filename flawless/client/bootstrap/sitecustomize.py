"""Put first on ``PYTHONPATH`` by ``flawless run``: installs the flawless client in this
Python process, then runs the ``sitecustomize`` this one hides, if any.

Never raises: a program must start exactly as it would without flawless.
"""


def _flawless_client():  # type: ignore[no-untyped-def]
    """The flawless client of the ``flawless`` that ran this program, even when this Python
    has another one, or none, installed (no other package of its environment is made
    importable)."""
    import importlib.util
    import os
    import sys

    if "flawless" not in sys.modules:
        package = os.path.join(os.environ.get("FLAWLESS_CLIENT_PATH", ""), "flawless")
        spec = importlib.util.spec_from_file_location(
            "flawless", os.path.join(package, "__init__.py"),
            submodule_search_locations=[package])
        if spec is not None and spec.loader is not None and os.path.isdir(package):
            module = importlib.util.module_from_spec(spec)
            sys.modules["flawless"] = module
            spec.loader.exec_module(module)
    import flawless.client

    return flawless.client


def _run_hidden_sitecustomize():  # type: ignore[no-untyped-def]
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    others = [path for path in sys.path if os.path.abspath(path or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


try:
    _flawless_client().install()
except Exception:  # noqa: BLE001 - never stop the program from starting
    pass
try:
    _run_hidden_sitecustomize()
except Exception:  # noqa: BLE001 - as Python's site module would, go on
    import traceback

    traceback.print_exc()
