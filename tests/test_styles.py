import nibabel as nib
import numpy as np
import pytest
import torch

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.style.key import save_style_key, style_key
from ct2mri_cli.style.sources import mri_style_key, resolve_style

DEFAULT = torch.full((3, 128), 0.5)


@pytest.fixture
def models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    (folder / "keys").mkdir(parents=True)
    monkeypatch.setenv("CT2MRI_MODELS", str(folder))
    return folder


def test_default_and_bundled_names(models):
    assert resolve_style(None, DEFAULT) == (DEFAULT, "model default")
    key = torch.rand(3, 128)
    save_style_key(models / "keys" / "colin27.safetensors", key)
    resolved, source = resolve_style("colin27", DEFAULT)
    assert torch.equal(resolved, key) and source == "bundled:colin27"


def test_key_file_and_mri_volume(models, tmp_path):
    key = torch.rand(3, 128)
    save_style_key(tmp_path / "mine.safetensors", key)
    assert torch.equal(resolve_style(str(tmp_path / "mine.safetensors"), DEFAULT)[0], key)
    data = np.zeros((10, 10, 10), np.float32)
    data[2:8, 2:8, 2:8] = np.random.default_rng(0).random((6, 6, 6)) * 500 + 100
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "t1.nii.gz"))
    resolved, source = resolve_style(str(tmp_path / "t1.nii.gz"), DEFAULT)
    lo, hi = np.percentile(data[data > 0], [0.5, 99.5])
    expected = style_key(np.where(data > 0, np.clip((data - lo) / (hi - lo), 0, 1), 0))
    torch.testing.assert_close(resolved, expected)
    assert source.startswith("mri:")


def test_unknown_style_lists_bundled_names(models):
    save_style_key(models / "keys" / "average.safetensors", torch.rand(3, 128))
    with pytest.raises(Ct2mriError, match=r"--style nope: no such file, and not a bundled key \(average\)"):
        resolve_style("nope", DEFAULT)


def test_normalise_modes(tmp_path):
    data = np.zeros((8, 8, 8), np.float32)
    data[2:6, 2:6, 2:6] = np.linspace(0.1, 0.9, 64).reshape(4, 4, 4)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "unit.nii.gz"))
    assert torch.equal(mri_style_key(tmp_path / "unit.nii.gz"), style_key(data))
    assert not torch.equal(mri_style_key(tmp_path / "unit.nii.gz", normalise="robust"), style_key(data))
    with pytest.raises(Ct2mriError, match="auto, robust or none"):
        mri_style_key(tmp_path / "unit.nii.gz", normalise="zscore")


def _save(path, data):
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def test_a_float_mri_and_its_256_level_copy_give_the_same_key(tmp_path):
    from ct2mri_cli.style.key import key_distance

    rng = np.random.default_rng(1)
    brain = np.zeros((40, 40, 40), dtype=bool)
    brain[5:35, 5:35, 5:35] = True
    t1 = np.where(brain, np.clip(rng.normal(300.0, 60.0, brain.shape), 50.0, 600.0), 0.0).astype(np.float32)
    levels = np.round(t1 / t1.max() * 255).astype(np.uint8)
    as_float = mri_style_key(_save(tmp_path / "float.nii.gz", t1))
    as_levels = mri_style_key(_save(tmp_path / "levels.nii.gz", levels))
    assert key_distance(as_float, as_levels) < 0.005


@pytest.mark.realdata
def test_the_colin27_brain_key_has_no_empty_bins():
    from tests.conftest import COLIN_BRAIN

    if not COLIN_BRAIN.exists():
        pytest.skip(f"{COLIN_BRAIN} missing: install the Debian package mricron-data")
    h = mri_style_key(COLIN_BRAIN)[0].numpy()
    filled = np.flatnonzero(h > 0)
    assert (h[filled.min() : filled.max() + 1] == 0).sum() == 0


def test_a_ct_given_as_style_is_refused(tmp_path, capsys):
    from ct2mri_cli.cli.app import main

    rng = np.random.default_rng(2)
    ct = np.full((30, 30, 30), -1000.0, dtype=np.float32)
    ct[5:25, 5:25, 5:25] = rng.normal(35.0, 5.0, (20, 20, 20))
    path = _save(tmp_path / "ct.nii.gz", ct)
    with pytest.raises(Ct2mriError, match="an MRI is needed here, not a CT"):
        mri_style_key(path)
    assert main(["histogram", str(path), "-o", str(tmp_path / "key.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "not a CT" in err and "Traceback" not in err and not (tmp_path / "key.safetensors").exists()


def test_the_bundled_colin27_key_has_no_empty_bins():
    from ct2mri_cli.bundled import bundled_key_path
    from ct2mri_cli.style.key import load_style_key

    h = load_style_key(bundled_key_path("colin27"))[0][0].numpy()
    filled = np.flatnonzero(h > 0)
    assert (h[filled.min() : filled.max() + 1] == 0).sum() == 0


@pytest.mark.realdata
def test_a_whole_head_mri_gives_the_key_of_its_brain():
    from ct2mri_cli.style.key import key_distance
    from tests.conftest import COLIN_BRAIN, COLIN_T1

    for path in (COLIN_T1, COLIN_BRAIN):
        if not path.exists():
            pytest.skip(f"{path} missing: install the Debian package mricron-data")
    head, brain = mri_style_key(COLIN_T1), mri_style_key(COLIN_BRAIN)
    assert key_distance(head, brain) < 0.02
    data = nib.load(str(COLIN_T1))
    whole = style_key(np.clip(np.asarray(data.dataobj, np.float32) / 255.0, 0, 1))  # the head's own histogram
    assert key_distance(whole, brain) > 0.1  # what the key was before the brain was found


def _source_head(name, tmp_path):
    from ct2mri_cli.data.sources import load_source, source_missing

    reason = source_missing(name)
    if reason:
        pytest.skip(reason)
    source = load_source(name)
    head, brain = tmp_path / f"{name}_head.nii.gz", tmp_path / f"{name}_brain.nii.gz"
    nib.save(nib.Nifti1Image(source.t1.astype(np.float32), source.affine), str(head))
    nib.save(nib.Nifti1Image(source.brain.astype(np.uint8), source.affine), str(brain))
    return head, brain


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sri24", "icbm2009c"])
def test_a_whole_head_whose_neck_and_face_misled_the_registration_gives_its_brain_s_key(name, tmp_path, capsys):
    """SRI24's head once gave a 3350 mL "brain" and a key 0.33 from its brain's (W1)."""
    from ct2mri_cli.io.volumes import read_volume
    from ct2mri_cli.style.brain import find_brain
    from ct2mri_cli.style.key import key_distance

    head, brain = _source_head(name, tmp_path)
    found = find_brain(read_volume(head))
    truth = np.asarray(nib.load(str(brain)).dataobj) > 0
    assert 2 * np.count_nonzero(found.mask & truth) / (found.mask.sum() + truth.sum()) > 0.88
    assert key_distance(mri_style_key(head), mri_style_key(head, brain)) <= 0.04
    assert found.warnings == [] and "style_" not in capsys.readouterr().err


@pytest.mark.realdata
@pytest.mark.parametrize("scale", [1.4, 1.8])
def test_a_head_whose_brain_cannot_be_right_is_named(scale, tmp_path, capsys):
    """A wrong voxel size in the header: the brain found fills a fifth of the head or less."""
    from tests.conftest import COLIN_T1

    if not COLIN_T1.exists():
        pytest.skip(f"{COLIN_T1} missing: install the Debian package mricron-data")
    image = nib.load(str(COLIN_T1))
    affine = image.affine.copy()
    affine[:3, :3] *= scale
    path = tmp_path / "scaled.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj, np.float32), affine), str(path))
    mri_style_key(path)
    assert "style_brain: the brain found fills" in " ".join(capsys.readouterr().err.split())


@pytest.mark.realdata
def test_an_mri_that_is_not_t1_is_named(tmp_path, capsys):
    """Colin27 with its contrast turned T2-like inside the head (CSF bright, white matter dark)."""
    from tests.conftest import COLIN_T1

    if not COLIN_T1.exists():
        pytest.skip(f"{COLIN_T1} missing: install the Debian package mricron-data")
    image = nib.load(str(COLIN_T1))
    t1 = np.asarray(image.dataobj, np.float32)
    head = t1 > 0.1 * np.percentile(t1, 99)
    t2 = np.where(head, np.percentile(t1, 99.5) * 1.1 - t1, 0.0)
    nib.save(nib.Nifti1Image(t2.astype(np.float32), image.affine), str(tmp_path / "t2.nii.gz"))
    mri_style_key(tmp_path / "t2.nii.gz")
    assert "style_contrast" in capsys.readouterr().err
    mri_style_key(COLIN_T1)
    assert "style_" not in capsys.readouterr().err


def test_a_key_far_from_the_model_s_is_named(capsys):
    from ct2mri_cli.style.sources import check_style_distance

    near = style_key(np.linspace(0.3, 0.8, 1000))
    far = style_key(np.linspace(0.85, 1.0, 1000))
    assert check_style_distance(near, near, "k") == 0.0 and "warning" not in capsys.readouterr().err
    assert check_style_distance(far, near, "k") > 0.1
    assert "the model never saw such a style" in capsys.readouterr().err


@pytest.mark.realdata
@pytest.mark.slow
def test_head_and_brain_styles_translate_alike(tmp_path):
    """The same CT translated with Colin27's head and with its brain as style: within 0.2 dB."""
    from ct2mri_cli.cli.app import main
    from ct2mri_cli.data.sources import source_missing
    from ct2mri_cli.data.synthesis import generate_pair
    from ct2mri_cli.evaluation.metrics import psnr
    from tests.conftest import COLIN_BRAIN, COLIN_T1

    reason = source_missing("mni") or (None if COLIN_T1.exists() else f"{COLIN_T1} missing")
    if reason:
        pytest.skip(reason)
    pair = generate_pair("mni", 4242, spacing_mm=2.0)
    nib.save(nib.Nifti1Image(pair.ct.astype(np.int16), pair.affine), str(tmp_path / "ct.nii.gz"))
    scores = []
    for style in (COLIN_T1, COLIN_BRAIN):
        out = tmp_path / f"{style.name.split('.')[0]}.nii.gz"
        assert (
            main(
                [
                    "-q",
                    "translate",
                    str(tmp_path / "ct.nii.gz"),
                    str(out),
                    "--style",
                    str(style),
                    "--sampler",
                    "coprediction",
                    "--steps",
                    "3",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        synthetic = np.asarray(nib.load(str(out)).dataobj, dtype=np.float32)
        brain = pair.mask.astype(bool) & (synthetic > 0)
        t1 = pair.t1.astype(np.float32)
        lo, hi = np.percentile(t1[brain], [0.5, 99.5])
        scores.append(psnr(synthetic, np.clip((t1 - lo) / (hi - lo), 0, 1), brain))
    assert abs(scores[0] - scores[1]) < 0.2, scores


def test_a_found_brain_is_normalised_on_its_core_and_counted_whole(tmp_path, monkeypatch):
    """The key of a whole head: robust range over the found brain less its outer 4 mm, histogram
    over all of the found brain (W1 to the true brain's key 0.029 on 28 heads, against 0.037 when
    the outermost millimetre was also left out)."""
    from ct2mri_cli.style import brain
    from ct2mri_cli.style.brain import StyleBrain

    rng = np.random.default_rng(3)
    data = rng.uniform(100.0, 900.0, size=(40, 40, 40)).astype(np.float32)
    found = np.zeros(data.shape, bool)
    found[5:35, 6:34, 7:33] = True
    data[found & (rng.random(data.shape) < 0.1)] = 2000.0  # bright voxels near the edge and inside
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "head.nii.gz"))
    monkeypatch.setattr(brain, "find_brain", lambda volume: StyleBrain(found, "registered to the MNI template"))
    core = np.zeros(data.shape, bool)
    core[9:31, 10:30, 11:29] = True  # the found box, 4 voxels (1 mm each) in from every side
    lo, hi = np.percentile(data[core].astype(np.float64), [0.5, 99.5])
    expected = style_key(np.clip((data - lo) / (hi - lo), 0.0, 1.0) * found, found)
    assert torch.allclose(mri_style_key(tmp_path / "head.nii.gz"), expected, atol=1e-6)


@pytest.mark.realdata
def test_a_small_head_is_not_taken_for_a_brain_only_image(tmp_path):
    """A head whose non-zero voxels fill less than a large brain (a child's, or a small synthetic
    head: 2106 mL) was taken whole as its brain: its key lay 0.21 from its brain's."""
    from ct2mri_cli.io.volumes import read_volume
    from ct2mri_cli.style.brain import find_brain
    from tests.conftest import COLIN_BRAIN, COLIN_T1

    if not (COLIN_T1.exists() and COLIN_BRAIN.exists()):
        pytest.skip("Colin27 missing: install the Debian package mricron-data")
    for source, name in ((COLIN_T1, "head"), (COLIN_BRAIN, "brain")):
        image = nib.load(str(source))
        affine = image.affine.copy()
        affine[:3, :3] *= 0.75  # a 4152 mL head becomes 1752 mL, its 1737 mL brain 733 mL
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj, np.float32), affine), str(tmp_path / f"{name}.nii.gz"))
    assert find_brain(read_volume(tmp_path / "head.nii.gz")).how == "registered to the MNI template"
    assert find_brain(read_volume(tmp_path / "brain.nii.gz")).how == "brain-only image"
