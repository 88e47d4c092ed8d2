"""Fault injection into nanopk's on-disk cache: a damaged cache never poisons a run.

Issue 17 #8: a truncated compiled library gave "Bus error" (exit 135) on every later
run, another model's library under the same name gave wrong numbers, and a read-only or
full cache folder gave a raw traceback.  Each entry is now checked against the build
record written beside it (key, size, SHA-256) before it is loaded, the checked bytes
are what is loaded, and a bad entry is rebuilt with a CacheWarning; a folder that cannot
be written is replaced by a temporary one with one warning.  Cases that could crash the
interpreter if the check regressed run in a child process.
"""
import errno
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import nanopk
import nanopk.compile as compile_
import nanopk.resources as resources
from nanopk.backends.cvode import read_verified
from nanopk.prebuilt import recipe_key
from nanopk.resources import CacheWarning
from nanopk.spec import model_path

TIMES = [0.5, 1.0, 24.0, 168.0]
MODELS = ("mouse_pbpk", "corona_plasma")
SIMULATE = "import json, nanopk; print(json.dumps(nanopk.load_model({name!r}).simulate({times!r}).to_numpy().tolist()))"


def _simulate_in_child(name, cache, **kwargs):
    env = dict(os.environ, NANOPK_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-c", SIMULATE.format(name=name, times=TIMES)], env=env, capture_output=True,
                          text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A cache folder with both models' libraries, build records and skeletons, and
    their simulations (made by a child process, as a user's earlier run would)."""
    folder = tmp_path_factory.mktemp("warm")
    expected = {}
    for name in MODELS:
        proc = _simulate_in_child(name, folder)
        assert proc.returncode == 0, proc.stderr
        expected[name] = np.array(json.loads(proc.stdout))
    return folder, expected


@pytest.fixture
def cache(warm, tmp_path, monkeypatch):
    """A private copy of the warm cache, used by this process from a clean slate."""
    folder = tmp_path / "cache"
    shutil.copytree(warm[0], folder)
    monkeypatch.setenv("NANOPK_CACHE_DIR", str(folder))
    monkeypatch.setattr(compile_, "_MEMO", {})
    monkeypatch.setattr(resources, "_FALLBACK", None)
    return folder


def library(folder, name):
    """The cached library of bundled model ``name`` in ``folder``."""
    model = nanopk.load_model(name)
    (path,) = folder.glob(f"nanopk_{model.structure_hash}_*.so")
    return path


def key_of(path):
    return path.stem.split("_", 2)[2]


def simulate(name):
    return nanopk.load_model(name).simulate(TIMES).to_numpy()


def test_truncated_library_is_rebuilt_not_loaded(warm, tmp_path):
    """Half a library (dlopen of it was a Bus error): the child exits 0 with the right
    numbers and a warning naming the file and its size, and the entry is whole again."""
    folder = tmp_path / "cache"
    shutil.copytree(warm[0], folder)
    path = library(folder, "mouse_pbpk")
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    proc = _simulate_in_child("mouse_pbpk", folder)
    assert proc.returncode == 0, proc.stderr
    assert f"CacheWarning: rebuilding the compiled model {path}: the file has {size // 2} bytes but {size} were written " \
           "(truncated or overwritten)" in proc.stderr
    np.testing.assert_allclose(np.array(json.loads(proc.stdout)), warm[1]["mouse_pbpk"], rtol=1e-12, atol=0)
    assert read_verified(path, key_of(path))[0] is not None


def test_empty_library_is_rebuilt(cache, warm):
    """An empty file: rebuilt with a warning, same numbers."""
    path = library(cache, "mouse_pbpk")
    path.write_bytes(b"")
    with pytest.warns(CacheWarning, match=rf"rebuilding the compiled model {path}: the file is empty"):
        result = simulate("mouse_pbpk")
    np.testing.assert_allclose(result, warm[1]["mouse_pbpk"], rtol=1e-12, atol=0)
    assert read_verified(path, key_of(path))[0] is not None


def test_another_models_library_is_rebuilt(cache, warm):
    """Another model's library under this model's name (same size or not): its digest
    differs from the record, so it is rebuilt, never loaded."""
    path, other = library(cache, "mouse_pbpk"), library(cache, "corona_plasma")
    shutil.copyfile(other, path)
    with pytest.warns(CacheWarning, match=rf"rebuilding the compiled model {path}: the file has \d+ bytes but \d+ were "
                      r"written|SHA-256 digest differs from the one recorded at build time"):
        result = simulate("mouse_pbpk")
    np.testing.assert_allclose(result, warm[1]["mouse_pbpk"], rtol=1e-12, atol=0)


def test_foreign_library_with_a_matching_record_is_refused_after_loading(cache, warm):
    """Another model's library AND a record forged to match it: the key compiled into the
    library is checked after loading, so it is still rebuilt before anything runs."""
    path, other = library(cache, "mouse_pbpk"), library(cache, "corona_plasma")
    data = other.read_bytes()
    shutil.copyfile(other, path)
    import hashlib

    path.with_suffix(".sha256").write_text(f"key={key_of(path)} size={len(data)} sha256={hashlib.sha256(data).hexdigest()}\n")
    with pytest.warns(CacheWarning, match=rf"rebuilding the compiled model {path}: it is a library built for another "
                      rf"model \(key '{key_of(other)}', expected '{key_of(path)}'\)"):
        result = simulate("mouse_pbpk")
    np.testing.assert_allclose(result, warm[1]["mouse_pbpk"], rtol=1e-12, atol=0)


def test_library_without_its_record_is_rebuilt(cache, warm):
    """No build record: the content cannot be checked, so it is rebuilt."""
    path = library(cache, "mouse_pbpk")
    path.with_suffix(".sha256").unlink()
    with pytest.warns(CacheWarning, match=rf"rebuilding the compiled model {path}: no build record {path.stem}.sha256 "
                      "beside it"):
        result = simulate("mouse_pbpk")
    np.testing.assert_allclose(result, warm[1]["mouse_pbpk"], rtol=1e-12, atol=0)


def test_library_damaged_on_disk_while_in_use(warm, tmp_path):
    """A process keeps its verified copy when the cache file is truncated or replaced
    under it (a mapped file that shrinks is a Bus error), and a new load rebuilds."""
    folder = tmp_path / "cache"
    shutil.copytree(warm[0], folder)
    path = library(folder, "mouse_pbpk")
    code = f"""
import json, shutil, warnings, nanopk, nanopk.compile as c
m = nanopk.load_model('mouse_pbpk')
first = m.simulate({TIMES!r}).to_numpy()
with open({str(path)!r}, 'r+b') as fh:
    fh.truncate(64)
again = m.simulate({TIMES!r}).to_numpy()
shutil.copyfile({str(library(folder, 'corona_plasma'))!r}, {str(path)!r})
c._MEMO.clear()
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    rebuilt = m.simulate({TIMES!r}).to_numpy()
print(json.dumps([first.tolist(), again.tolist(), rebuilt.tolist(), [str(x.message) for x in w]]))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NANOPK_CACHE_DIR=str(folder)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    first, again, rebuilt, messages = json.loads(proc.stdout)
    for result in (first, again, rebuilt):
        np.testing.assert_allclose(np.array(result), warm[1]["mouse_pbpk"], rtol=1e-12, atol=0)
    assert len(messages) == 1 and messages[0].startswith(f"rebuilding the compiled model {path}: ")


def _refuse_writes(monkeypatch, folder, code, where):
    """Make writes under ``folder`` fail with ``code`` at ``where`` ("open": creating a
    file or folder, as on a read-only file system; "replace": the final rename, after
    the data were written, as on a full disk)."""
    real_open, real_mkdir, real_replace = os.open, os.mkdir, os.replace

    def inside(path):
        return os.path.abspath(os.fspath(path)).startswith(str(folder))

    def refuse(path):
        raise OSError(code, os.strerror(code), os.fspath(path))

    def fake_open(path, flags, *args, **kwargs):
        if where == "open" and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if where == "open" and inside(path) and not os.path.isdir(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def fake_replace(src, dst, *args, **kwargs):
        if where == "replace" and inside(dst):
            refuse(dst)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", fake_replace)


@pytest.mark.parametrize("code, where, reason", [(errno.EROFS, "open", "Read-only file system"),
                                                 (errno.ENOSPC, "replace", "No space left on device")])
def test_unwritable_cache_falls_back_to_a_temporary_one(cache, warm, monkeypatch, code, where, reason):
    """An empty cache folder that cannot be written: one warning for two models, the
    right numbers, the libraries verified in the temporary folder, no file left behind."""
    for path in cache.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    _refuse_writes(monkeypatch, cache, code, where)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        results = {name: simulate(name) for name in MODELS}
    messages = [str(w.message) for w in record if issubclass(w.category, CacheWarning)]
    assert messages == [f"nanopk cannot use its cache folder {cache} ({reason}); compiled models are cached in the temporary "
                        f"folder {resources._FALLBACK} for this process only. Set NANOPK_CACHE_DIR to a writable folder "
                        "with free space to keep them between runs."], [str(w.message) for w in record]
    for name in MODELS:
        np.testing.assert_allclose(results[name], warm[1][name], rtol=1e-12, atol=0)
        path = library(resources._FALLBACK, name)
        assert read_verified(path, key_of(path))[0] is not None
    assert not list(cache.rglob("*.tmp")) and not list(cache.rglob("*.so"))  # nothing half-written
    shutil.rmtree(resources._FALLBACK)


def test_cli_with_a_cache_folder_that_cannot_exist(tmp_path):
    """NANOPK_CACHE_DIR below a regular file: the CLI simulates, exit 0, one warning line,
    no traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = dict(os.environ, NANOPK_CACHE_DIR=str(blocker / "cache"))
    proc = subprocess.run([sys.executable, "-m", "nanopk", "simulate", "corona_plasma", "--times", "1,24"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("CacheWarning") == 1
    assert f"nanopk cannot use its cache folder {blocker / 'cache'} (Not a directory)" in proc.stderr
    assert "plasma [%ID]" in proc.stdout


def skeleton(folder, name):
    """The remembered model ``name`` in ``folder``, under this process's key (the key also
    hashes nanopk's source, so it is written here rather than taken from the child)."""
    nanopk.load_model(name)
    path = model_path(name)
    found = folder / "models" / f"{recipe_key(path, path.read_text(), None, None)}.pickle"
    assert found.is_file()
    return found


def test_truncated_skeleton_is_rebuilt(cache, warm):
    """A remembered model cut short: rebuilt with a warning, same model and numbers."""
    path = skeleton(cache, "mouse_pbpk")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(CacheWarning, match=rf"rebuilding the remembered model {path}: its content does not match the "
                      "SHA-256 digest written with it"):
        result = simulate("mouse_pbpk")
    np.testing.assert_allclose(result, warm[1]["mouse_pbpk"], rtol=1e-12, atol=0)


def test_another_models_skeleton_is_rebuilt(cache, warm):
    """corona_plasma's remembered model copied under mouse_pbpk's key: refused (it would
    have given mouse_pbpk corona_plasma's states and library), mouse_pbpk is rebuilt."""
    path, other = skeleton(cache, "mouse_pbpk"), skeleton(cache, "corona_plasma")
    shutil.copyfile(other, path)
    with pytest.warns(CacheWarning, match=rf"rebuilding the remembered model {path}: it was written for another model "
                      rf"\(key '{other.stem}', expected '{path.stem}'\)"):
        model = nanopk.load_model("mouse_pbpk")
    assert model.name == "mouse_pbpk"
    np.testing.assert_allclose(model.simulate(TIMES).to_numpy(), warm[1]["mouse_pbpk"], rtol=1e-12, atol=0)
