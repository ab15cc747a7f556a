import pytest
import torch

from ct2mri_cli import device as device_module
from ct2mri_cli.device import check_device_spec, resolve_device
from ct2mri_cli.errors import Ct2mriError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


def test_cpu_is_always_there():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


def test_auto_falls_back_to_cpu_loudly_once_per_run(no_gpu, capsys, monkeypatch):
    from ct2mri_cli.reporting import settings

    monkeypatch.setattr(settings, "said", set())
    monkeypatch.setattr(settings, "quiet", False)
    assert resolve_device("auto") == torch.device("cpu")
    assert capsys.readouterr().err.count("running on the CPU") == 1
    assert resolve_device("auto") == torch.device("cpu")
    assert "running on the CPU" not in capsys.readouterr().err


def test_cpu_fallback_is_silent_with_quiet(no_gpu, capsys, monkeypatch):
    from ct2mri_cli.reporting import settings

    monkeypatch.setattr(settings, "said", set())
    monkeypatch.setattr(settings, "quiet", True)
    assert resolve_device("auto") == torch.device("cpu")
    assert "running on the CPU" not in capsys.readouterr().err


def test_auto_prefers_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == torch.device("cuda", 0)


def test_unavailable_devices_fail_in_one_line(no_gpu):
    for spec in ("cuda", "cuda:0", "mps"):
        with pytest.raises(Ct2mriError) as info:
            resolve_device(spec)
        assert "not available" in str(info.value) and "\n" not in str(info.value)


def test_cuda_index_out_of_range(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(Ct2mriError, match="only 2 CUDA device"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda:-1", "tpu", ""])
def test_bad_spelling(spec):
    with pytest.raises(Ct2mriError, match="expected auto, cpu, cuda, cuda:N or mps"):
        check_device_spec(spec)
