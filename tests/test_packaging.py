"""The sdist and wheel, built as a new machine builds them (an isolated build environment
with today's setuptools), ship every package and only the example configuration, and the
wheel installs into a fresh virtualenv and runs the server from there."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

from support.gitrepo import average_report
from support.server import FlawlessProcess, server_options, write_config

ROOT = Path(__file__).resolve().parent.parent
CANARY = "smtp_password = LOCAL-CONFIG-CANARY-7731"


def source_copy(target: Path) -> Path:
    """The files git tracks (and the untracked ones it does not ignore), as a user's checkout
    holds them, plus a local config with a password placed in config/."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())
    (target / "config" / "local.cfg").write_text(f"[flawless]\n{CANARY}\n")
    (target / "config" / "data").mkdir(exist_ok=True)
    (target / "config" / "data" / "mailbox").write_text(CANARY)
    return target


def test_sdist_and_wheel_ship_every_package_and_no_local_config(tmp_path, shop):
    tree = source_copy(tmp_path / "checkout")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist),
                    str(tree)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(dist.glob("flawless-*.whl"))
    sdist = next(dist.glob("flawless-*.tar.gz"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "flawless/templates/email_alert.html" in names
    assert "flawless/example_config/flawless.cfg" in names
    assert "flawless/client/bootstrap/sitecustomize.py" in names  # for flawless run
    packages = {str(path.parent.relative_to(ROOT)).replace("/", ".")
                for path in (ROOT / "flawless").rglob("__init__.py")}
    assert packages <= {name.rpartition("/")[0].replace("/", ".") for name in names}
    assert not any("local.cfg" in name or "mailbox" in name for name in names)
    for member in tarfile.open(sdist).getmembers():
        assert "local.cfg" not in member.name and "/data/" not in member.name
    for archive in (wheel, sdist):
        assert CANARY.encode() not in archive.read_bytes()

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
