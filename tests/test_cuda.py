"""On CUDA: the translator agrees with the CPU, bf16 stays close to fp32, batches adapt (skipped without CUDA)."""

import numpy as np
import pytest
import torch

from ct2mri_cli.evaluation.metrics import psnr
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.io.volumes import Volume
from ct2mri_cli.weights import load_weights
from tests.helpers import fast_weights

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def phantom():
    from tests.conftest import make_head_phantom

    head = make_head_phantom(spacing=(3.0, 3.0, 3.0))
    return Volume(data=head.hu.astype(np.float32), affine=head.affine)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return fast_weights(tmp_path_factory.mktemp("w") / "w.safetensors")


@pytest.fixture
def bundle(weights):
    return load_weights(weights)  # a Translator moves its network: each test loads its own


def test_cuda_fp32_matches_the_cpu(weights, phantom):
    on_cpu = load_weights(weights)
    cpu = Translator(on_cpu, torch.device("cpu"), on_cpu.sampling, precision="fp32").translate(
        phantom, on_cpu.default_style_key
    )
    on_gpu = load_weights(weights)
    gpu = Translator(on_gpu, torch.device("cuda"), on_gpu.sampling, precision="fp32").translate(
        phantom, on_gpu.default_style_key
    )
    assert np.array_equal(gpu.mask, cpu.mask)
    assert psnr(gpu.mri01, cpu.mri01, cpu.mask) > 40.0


def test_cuda_bf16_stays_close_to_fp32_and_batches_every_window(bundle, phantom):
    fp32 = Translator(bundle, torch.device("cuda"), bundle.sampling, precision="fp32").translate(
        phantom, bundle.default_style_key
    )
    bf16_translator = Translator(bundle, torch.device("cuda"), bundle.sampling)  # the same network, now under autocast
    assert bf16_translator.autocast == torch.bfloat16 and bf16_translator.channels_last
    bf16 = bf16_translator.translate(phantom, bundle.default_style_key)
    assert bf16.batch_size == bf16.ct_model01.shape[0]  # every window of the volume in one call
    assert psnr(bf16.mri01, fp32.mri01, fp32.mask) > 30.0


def test_cuda_outputs_repeat_bit_for_bit(bundle, phantom):
    translator = Translator(bundle, torch.device("cuda"), bundle.sampling, precision="fp32")
    first = translator.translate(phantom, bundle.default_style_key).mri01
    assert np.array_equal(first, translator.translate(phantom, bundle.default_style_key).mri01)
