"""flawless: blame the line behind each Python exception and email its author."""

__version__ = "1.0.0"


def load_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    """Entry point of ``%load_ext flawless``: report exceptions raised in cells."""
    from flawless.client.ipython import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython):  # type: ignore[no-untyped-def]
    """Entry point of ``%unload_ext flawless``."""
    from flawless.client.ipython import unload_ipython_extension as unload

    unload(ipython)
