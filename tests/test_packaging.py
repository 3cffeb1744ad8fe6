"""The built wheel installs into a fresh virtualenv and runs the server from there."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from support.gitrepo import average_report
from support.server import FlawlessProcess, server_options, write_config

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installs_and_starts_in_a_fresh_virtualenv(tmp_path, shop):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(ROOT)], check=True, cwd=tmp_path)
    wheel = next(dist.glob("flawless-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "flawless/templates/email_alert.html" in names
    assert "flawless/example_config/flawless.cfg" in names
    assert "flawless/client/bootstrap/sitecustomize.py" in names  # for flawless run
    assert "flawless/client/django/apps.py" in names

    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   cwd=tmp_path)
    located = subprocess.run([str(python), "-c", "import flawless; print(flawless.__file__)"],
                             check=True, capture_output=True, text=True, cwd=tmp_path)
    assert str(environment) in located.stdout

    data_dir = tmp_path / "server" / "data"
    config = write_config(tmp_path / "server",
                          server_options(data_dir, repo_dir=shop.path, report_error_threshold=1))
    server = FlawlessProcess(config, data_dir, command=[str(environment / "bin" / "flawless")])
    server.start(timeout=60)
    try:
        assert server.call("ping")["result"] is True
        assert server.record(average_report("shop/cart.py"))["result"] == {"accepted": True}
        mailbox = data_dir / "mailbox"
        assert server.wait_until(lambda: mailbox.exists() and b"bob@example.org"
                                 in mailbox.read_bytes())
    finally:
        assert server.stop() == 0
