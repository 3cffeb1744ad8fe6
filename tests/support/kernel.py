"""A real Jupyter kernel (ipykernel, started through jupyter_client) driven the way
JupyterLab drives it: one ``execute_request`` per code cell, with the cell's nbformat id in
the request's metadata (``cellId``)."""

from __future__ import annotations

import os
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from jupyter_client.manager import KernelManager

# Variables of the test's own environment that would change what the kernel's client does.
_INHERITED_AWAY = ("FLAWLESS_", "JPY_SESSION_NAME", "IPYKERNEL_CELL_NAME")


@dataclass(frozen=True)
class Execution:
    """What the front end learnt from running one cell."""

    status: str                       # "ok" or "error"
    execution_count: Optional[int]    # the N of In[N]
    error_name: Optional[str]
    stdout: str


class NotebookKernel:
    """``with NotebookKernel(cwd, env) as kernel: kernel.execute(code, cell_id)``."""

    def __init__(self, cwd: Path, env: Mapping[str, str], timeout: float = 60.0) -> None:
        self.timeout = timeout
        base = {name: value for name, value in os.environ.items()
                if not name.startswith(_INHERITED_AWAY)}
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(cwd=str(cwd), env={**base, **env})
        self.client = self.manager.client()
        self.client.start_channels()
        try:
            self.client.wait_for_ready(timeout=timeout)
            interpreter = self.evaluate("__import__('sys').executable")
        except Exception:
            self.stop()
            raise
        if interpreter != repr(sys.executable):  # a kernel spec of the machine's took over
            self.stop()
            raise RuntimeError(f"the kernel runs {interpreter}, not {sys.executable}")

    def __enter__(self) -> "NotebookKernel":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def evaluate(self, expression: str) -> str:
        """The repr of ``expression`` in the kernel, evaluated silently (no cell is run)."""
        reply = self._request({"code": "", "silent": True, "store_history": False,
                               "user_expressions": {"value": expression},
                               "allow_stdin": False}, {})
        return reply["content"]["user_expressions"]["value"]["data"]["text/plain"]

    def execute(self, code: str, cell_id: Optional[str] = None) -> Execution:
        """Run ``code`` as a stored cell; wait for its reply and for the kernel to go idle."""
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": False}
        reply = self._request(content, {"cellId": cell_id} if cell_id is not None else {})
        msg_id = reply["parent_header"]["msg_id"]
        deadline = time.monotonic() + self.timeout
        stdout = []
        while True:
            output = self._next(self.client.get_iopub_msg, msg_id, deadline)
            kind = output["msg_type"]
            if kind == "stream" and output["content"]["name"] == "stdout":
                stdout.append(output["content"]["text"])
            if kind == "status" and output["content"]["execution_state"] == "idle":
                break
        answer = reply["content"]
        return Execution(answer["status"], answer.get("execution_count"), answer.get("ename"),
                         "".join(stdout))

    def run_notebook(self, notebook: Any) -> list[Execution]:
        """Run every code cell of an nbformat notebook in order, each with its id."""
        return [self.execute(cell.source, cell.get("id"))
                for cell in notebook.cells if cell.cell_type == "code"]

    def _request(self, content: dict, metadata: dict) -> dict:
        message = self.client.session.msg("execute_request", content, metadata=metadata)
        self.client.shell_channel.send(message)
        return self._next(self.client.get_shell_msg, message["header"]["msg_id"],
                          time.monotonic() + self.timeout, "execute_reply")

    @staticmethod
    def _next(receive: Any, msg_id: str, deadline: float,
              msg_type: Optional[str] = None) -> dict:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {msg_type or 'output'} for {msg_id}")
            try:
                message = receive(timeout=remaining)
            except queue.Empty:
                continue
            if message["parent_header"].get("msg_id") == msg_id and \
                    msg_type in (None, message["msg_type"]):
                return message

    def stop(self) -> None:
        """Shut the kernel down (killing it if it does not stop)."""
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)
