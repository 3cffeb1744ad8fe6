"""``flawless sourcemaps``: a build directory's maps stored for a release."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flawless.server.ingest.sourcemap_upload import BadBuild, build_maps, script_url
from flawless.server.storage.sqlite import SqliteStorage

BUILD = Path(__file__).resolve().parent / "data" / "esbuild" / "dist"


def test_a_script_and_its_map_are_paired_and_named_by_url(tmp_path):
    build = tmp_path / "dist"
    shutil.copytree(BUILD, build / "js")
    (build / "js" / "vendor.js.map").write_text('{"version":3,"sources":[],"mappings":""}')
    maps = build_maps(str(build), "/static/")
    assert [(item.url, item.generated is not None) for item in maps] == [
        ("/static/js/app.js", True), ("/static/js/vendor.js", False)]
    assert maps[0].map == (BUILD / "app.js.map").read_bytes()


def test_a_sourcemappingurl_names_the_map_of_a_script(tmp_path):
    (tmp_path / "maps").mkdir()
    (tmp_path / "bundle.8f3a.js").write_text("x()\n//# sourceMappingURL=maps/b.map\n")
    (tmp_path / "maps" / "b.map").write_text('{"version":3,"sources":[],"mappings":""}')
    [item] = build_maps(str(tmp_path), "https://cdn.example/static")
    assert item.url == "https://cdn.example/static/bundle.8f3a.js"
    assert item.generated.startswith(b"x()")


@pytest.mark.parametrize("content, reason", [("{not json", "not JSON"),
                                             ('{"version": 3}', "not a source map")])
def test_a_map_that_is_no_source_map_is_refused_by_name(tmp_path, content, reason):
    (tmp_path / "app.js.map").write_text(content)
    with pytest.raises(BadBuild, match=reason):
        build_maps(str(tmp_path), "/static/")


def test_prefixes_are_joined_with_one_slash():
    assert script_url("static", "a.js") == "/static/a.js"
    assert script_url("/static/", "/a.js") == "/static/a.js"


def test_the_command_stores_the_maps_for_the_release(tmp_path):
    config = tmp_path / "flawless.cfg"
    config.write_text(f"[flawless]\ndata_dir_path = {tmp_path / 'data'}\n")
    done = subprocess.run([sys.executable, "-m", "flawless", "sourcemaps", "-conf", str(config),
                           "--release", "ABC123", "--url-prefix", "/static/", str(BUILD)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "stored 1 source map for release abc123" in done.stdout
    storage = SqliteStorage(str(tmp_path / "data" / "flawless.sqlite3"))
    stored = storage.sourcemap("abc123", ["http://h/static/app.js", "/static/app.js"])
    assert stored.url == "/static/app.js" and stored.generated.startswith(b"(()=>")
    assert storage.sourcemap("other", ["/static/app.js"]) is None
    empty = subprocess.run([sys.executable, "-m", "flawless", "sourcemaps", "-conf", str(config),
                            "--release", "abc123", "--url-prefix", "/", str(tmp_path / "none")],
                           capture_output=True, text=True)
    assert empty.returncode == 1 and "not a directory" in empty.stderr
