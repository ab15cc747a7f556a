"""CT to MRI registration: a synthetic CT of a real T1 moved by a known rigid transform."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from ct2mri_cli.io.images import array_from_sitk, sitk_from_array
from ct2mri_cli.io.volumes import Volume
from ct2mri_cli.preprocessing.registration import RegistrationSettings, register_ct_to_mri, run_registration
from tests.helpers import mean_displacement_mm, resample_to_reference, transform_points_ras


def block_mean(data: np.ndarray, factor: int = 2) -> np.ndarray:
    shape = [n // factor * factor for n in data.shape]
    trimmed = data[: shape[0], : shape[1], : shape[2]]
    return trimmed.reshape(shape[0] // factor, factor, shape[1] // factor, factor, shape[2] // factor, factor).mean(
        axis=(1, 3, 5)
    )


def downsample(volume: Volume, factor: int = 2) -> Volume:
    affine = volume.affine.copy()
    affine[:3, :3] = volume.affine[:3, :3] * factor
    affine[:3, 3] = volume.affine[:3, :3] @ np.full(3, (factor - 1) / 2) + volume.affine[:3, 3]
    return Volume(block_mean(volume.data, factor).astype(np.float32), affine)


def synthetic_ct(t1: Volume, brain: np.ndarray, seed: int = 0) -> np.ndarray:
    """HU from a T1 head: CSF 8, grey ~40, white ~27 (non-monotonic in T1), skull, scalp, air."""
    data = t1.data
    head_image = sitk.BinaryFillhole(
        sitk.Equal(
            sitk.RelabelComponent(
                sitk.ConnectedComponent(sitk_from_array((data > 15).astype(np.uint8), t1.affine)), sortByObjectSize=True
            ),
            1,
        )
    )
    head = array_from_sitk(head_image).astype(bool)
    hu = np.full(data.shape, -1000.0)
    hu[head] = np.where(data[head] < 40, 900.0, np.where(data[head] > 120, -90.0, 40.0))
    hu[brain] = np.interp(data[brain], [30, 60, 85, 110], [8, 40, 38, 27])
    hu += np.random.default_rng(seed).normal(0.0, 6.0, hu.shape)
    return hu.astype(np.float32)


def known_motion(centre_ras: np.ndarray) -> sitk.VersorRigid3DTransform:
    """8 degrees about an oblique axis through the brain's centre, then 6 mm."""
    motion = sitk.VersorRigid3DTransform()
    motion.SetCenter([float(v) for v in centre_ras * [-1, -1, 1]])
    motion.SetRotation([1.0, 2.0, 0.5], float(np.deg2rad(8.0)))
    shift = np.array([3.5, -4.0, 2.9])
    motion.SetTranslation((shift / np.linalg.norm(shift) * 6.0).tolist())
    return motion


def test_transform_points_ras_handles_the_lps_flip():
    shift = sitk.TranslationTransform(3, (5.0, -2.0, 1.0))  # LPS: +5 L, -2 P, +1 S
    out = transform_points_ras(shift, np.array([[0.0, 0.0, 0.0], [10.0, 20.0, 30.0]]))
    np.testing.assert_allclose(out, [[-5.0, 2.0, 1.0], [5.0, 22.0, 31.0]])
    assert mean_displacement_mm(shift, sitk.Transform(), np.zeros((3, 3))) == pytest.approx(np.sqrt(30.0))


@pytest.fixture(scope="module")
def moved_pair(colin):
    t1_full, bet_full = colin
    t1 = downsample(t1_full)
    brain = downsample(bet_full).data > 0.5
    ct_on_t1 = Volume(synthetic_ct(t1, brain), t1.affine)
    brain_world = np.argwhere(brain) @ t1.affine[:3, :3].T + t1.affine[:3, 3]
    motion = known_motion(brain_world.mean(axis=0))
    # the CT lives on its own grid: LPS, 1 x 1 x 2 mm, covering the head
    ct_affine = np.diag([-1.0, -1.0, 2.0, 1.0])
    ct_affine[:3, 3] = [100.0, 130.0, -80.0]
    ct_grid = Volume(np.zeros((200, 260, 100), np.float32), ct_affine)
    ct = Volume(resample_to_reference(ct_on_t1, ct_grid, motion, fill=-1000.0), ct_affine, description="moved CT")
    return t1, ct, motion, brain_world[::3]


@pytest.mark.slow
@pytest.mark.realdata
def test_rigid_registration_recovers_8_degrees_and_6_mm(moved_pair):
    t1, ct, motion, brain_points = moved_pair
    truth = motion.GetInverse()  # MRI point -> where the CT shows that anatomy
    before = mean_displacement_mm(sitk.Transform(), truth, brain_points)
    assert before > 6.0
    result = register_ct_to_mri(ct, t1)
    error = mean_displacement_mm(result.transform, truth, brain_points)
    assert error < 1.0, f"mean displacement {error:.2f} mm inside the brain"
    assert result.kind == "rigid" and np.isfinite(result.metric) and result.metric < -0.5


@pytest.mark.slow
@pytest.mark.realdata
def test_affine_registration_also_aligns(moved_pair):
    t1, ct, motion, brain_points = moved_pair
    result = register_ct_to_mri(ct, t1, affine=True)
    assert result.kind == "affine"
    assert mean_displacement_mm(result.transform, motion.GetInverse(), brain_points) < 1.5


REPEAT_SCRIPT = """
import sys
import numpy as np, SimpleITK as sitk
from ct2mri_cli.io.images import sitk_from_array
from ct2mri_cli.preprocessing.registration import centred_by_moments, run_registration
from ct2mri_cli.style.brain import TEMPLATE_REGISTRATION
sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(sys.argv[1]))
grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 72)] * 3, indexing="ij"))
noise = np.random.default_rng(7).normal(size=(72, 72, 72))
head = (np.sum((grid / [[[[0.8]]], [[[0.7]]], [[[0.6]]]]) ** 2, axis=0) < 1) * 100.0
image = sitk.SmoothingRecursiveGaussian(sitk_from_array((head + 20 * noise).astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0])), 3.0)
motion = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.1, -0.05, 0.08, (4.0, -3.0, 2.0))
moved = sitk.Resample(image, image, motion, sitk.sitkLinear, 0.0)
rigid = centred_by_moments(image, moved, sitk.Euler3DTransform())
run_registration(image, moved, rigid, TEMPLATE_REGISTRATION, in_place=True)
print(repr(rigid.GetParameters()))
"""


def test_a_one_thread_registration_repeats_exactly_whatever_the_process_thread_count():
    """Synthetic anatomies and style brains rest on one-thread registrations: a process whose ITK
    pool has 1, 2 or 4 threads must find the same transform to the last bit."""
    runs = [
        subprocess.run(
            [sys.executable, "-c", REPEAT_SCRIPT, str(threads)], capture_output=True, text=True, check=True, timeout=600
        )
        for threads in (1, 2, 4)
    ]
    found = {run.stdout.strip() for run in runs}
    assert len(found) == 1, found


def test_a_registration_gives_the_process_its_thread_count_back_even_when_it_fails():
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 24)] * 3, indexing="ij"))
    blob = (100.0 * np.exp(-4.0 * np.sum(grid**2, axis=0))).astype(np.float32)
    fixed = sitk_from_array(blob, np.diag([2.0, 2.0, 2.0, 1.0]))
    settings = RegistrationSettings(threads=1, shrink_factors=(1,), smoothing_mm=(0.0,), iterations=5)
    far = np.diag([2.0, 2.0, 2.0, 1.0])
    far[:3, 3] = 5000.0  # no overlap: ITK refuses
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    try:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(3)
        run_registration(fixed, fixed, sitk.Euler3DTransform(), settings)
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 3
        with pytest.raises(RuntimeError):
            run_registration(fixed, sitk_from_array(blob, far), sitk.Euler3DTransform(), settings)
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 3
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
