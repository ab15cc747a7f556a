"""The inference weights file: one safetensors with the network and everything translate needs.

Metadata (all JSON strings): ``format`` = "ct2mri-weights", ``format_version``, ``network``
(:class:`UNetConfig`), ``bridge`` (:class:`BridgeConfig`), ``preprocess``
(:class:`PreprocessConfig`), ``sampling`` (:class:`SamplingConfig`), ``default_style_key``
(3 x 128 floats), ``provenance`` (package version, training steps, seed, date, ...) and
``tensors_sha256``, a digest of every tensor's name, dtype, shape and bytes, checked on loading
so a damaged file is refused before it samples anything (files written before it existed load
without the check).  :func:`file_summary` says what a weights (or style key) file holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .diffusion.bridge import BridgeConfig
from .errors import Ct2mriError
from .io.atomic import atomic_output
from .network import UNet, UNetConfig
from .preprocessing.config import PreprocessConfig
from .settings import SamplingConfig
from .style.key import KEY_FORMAT, load_style_key, validate_style_key

FORMAT = "ct2mri-weights"
FORMAT_VERSION = 1
REQUIRED_METADATA = (
    "format",
    "format_version",
    "network",
    "bridge",
    "preprocess",
    "sampling",
    "default_style_key",
    "provenance",
)


@dataclass
class ModelBundle:
    """A network with the settings that make its output reproducible."""

    network: UNet
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    default_style_key: torch.Tensor = field(default_factory=lambda: torch.zeros(3, 128))
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None

    @property
    def network_config(self) -> UNetConfig:
        return self.network.config


def save_weights(path: str | os.PathLike, bundle: ModelBundle) -> str:
    """Write ``bundle`` atomically; returns the file's sha256."""
    from safetensors.torch import save_file

    provenance = {"package_version": __version__, "date": datetime.now(UTC).isoformat(timespec="seconds")}
    provenance.update(bundle.provenance)
    key = validate_style_key(bundle.default_style_key)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "network": json.dumps(bundle.network.config.to_dict()),
        "bridge": json.dumps(bundle.bridge.to_dict()),
        "preprocess": json.dumps(bundle.preprocess.to_dict()),
        "sampling": json.dumps(bundle.sampling.to_dict()),
        "default_style_key": json.dumps(key.double().tolist()),
        "provenance": json.dumps(provenance),
    }
    tensors = {
        name: t.detach().to("cpu", torch.float32).contiguous() for name, t in bundle.network.state_dict().items()
    }
    metadata["tensors_sha256"] = json.dumps(tensors_digest(tensors))
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return file_sha256(path)


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors in name order: name, dtype, shape and raw bytes of each."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def check_tensors(path: str | os.PathLike, metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """ "matches" or "not recorded"; a digest that differs from the recorded one is an error."""
    recorded = metadata.get("tensors_sha256")
    if recorded is None:
        return "not recorded"
    if json.loads(recorded) != tensors_digest(tensors):
        raise Ct2mriError(f"{path}: the weights are damaged (their digest differs from the one recorded in the file)")
    return "matches"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The raw metadata of a weights file, checked for format and version."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise Ct2mriError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise Ct2mriError(f"{path}: not a safetensors weights file ({exc})") from None
    if metadata.get("format") != FORMAT:
        raise Ct2mriError(f"{path}: not a ct2mri weights file (format {metadata.get('format')!r})")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise Ct2mriError(
            f"{path}: weights format version {metadata.get('format_version')!r}; this ct2mri reads version {FORMAT_VERSION}"
        )
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise Ct2mriError(f"{path}: weights metadata lacks {', '.join(missing)}")
    return metadata


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> ModelBundle:
    """Load and validate a weights file; any problem is a one-line :class:`Ct2mriError`."""
    from safetensors.torch import load_file

    path = Path(path)
    metadata = read_metadata(path)
    try:
        network_config = UNetConfig.from_dict(json.loads(metadata["network"]))
        bridge = BridgeConfig.from_dict(json.loads(metadata["bridge"]))
        preprocess = PreprocessConfig.from_dict(json.loads(metadata["preprocess"]))
        sampling = SamplingConfig.from_dict(json.loads(metadata["sampling"]))
        style = validate_style_key(
            torch.tensor(json.loads(metadata["default_style_key"])), f"{path}: default style key"
        )
        provenance = json.loads(metadata["provenance"])
    except (ValueError, TypeError) as exc:
        raise Ct2mriError(f"{path}: invalid weights metadata ({exc})") from None

    network = UNet(network_config)
    expected = network.state_dict()
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for damaged data
        raise Ct2mriError(f"{path}: the weights cannot be read ({exc})") from None
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise Ct2mriError(f"{path}: weights do not match the network config ({detail})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise Ct2mriError(
                f"{path}: tensor {name} has shape {tuple(tensor.shape)}, the network config needs {tuple(expected[name].shape)}"
            )
    check_tensors(path, metadata, tensors)
    network.load_state_dict(tensors)
    network.to(device).eval()
    return ModelBundle(
        network=network,
        bridge=bridge,
        preprocess=preprocess,
        sampling=sampling,
        default_style_key=style,
        provenance=provenance,
        path=path,
        sha256=file_sha256(path),
    )


DIGEST_MISMATCH = "MISMATCH"  # how a summary's tensors_digest begins when the tensors are damaged


def file_summary(path: Path) -> dict[str, Any]:
    """What a weights file, or a style key file, holds (``ct2mri info``): its kind, sha256 and
    metadata; for weights also the format, parameter count and whether the tensors match their
    recorded digest (a value starting with :data:`DIGEST_MISMATCH` when they do not).  A file of
    neither kind, or metadata that is not JSON, is a one-line :class:`Ct2mriError`."""
    if _format_of(path) == KEY_FORMAT:
        key, metadata = load_style_key(path)
        return {
            "file": str(path),
            "kind": "style key",
            "sha256": file_sha256(path),
            "metadata": metadata,
            "histogram_mass": round(float(key[0].sum()), 6),
        }
    metadata = read_metadata(path)
    decoded = {}
    for name, value in metadata.items():
        if name in ("format", "format_version", "tensors_sha256"):
            continue
        try:
            decoded[name] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise Ct2mriError(
                f"{path}: the metadata entry {name!r} is not valid JSON ({exc.msg} at character {exc.pos}); "
                "the file is damaged"
            ) from None
    style = decoded.pop("default_style_key")
    return {
        "file": str(path),
        "kind": "weights",
        "format": f"{metadata['format']} v{metadata['format_version']}",
        "sha256": file_sha256(path),
        "parameters": _parameter_count(path),
        "tensors_digest": _digest_state(path, metadata),
        **decoded,
        "default_style_key": f"3x{len(style[0])}",
    }


def _digest_state(path: Path, metadata: dict[str, str]) -> str:
    """Whether the tensors match the digest the file records: matches, not recorded, or MISMATCH."""
    from safetensors.torch import load_file

    try:
        return check_tensors(path, metadata, load_file(str(path)))
    except Ct2mriError:
        return f"{DIGEST_MISMATCH}: the file is damaged"
    except Exception as exc:  # unreadable tensor data
        return f"{DIGEST_MISMATCH}: the tensors cannot be read ({type(exc).__name__})"


def _format_of(path: Path) -> str | None:
    """The ``format`` metadata entry, or None when the file is not a readable safetensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("format")
    except Exception:  # unreadable files get their message from read_metadata
        return None


def _parameter_count(path: Path) -> int:
    from safetensors import safe_open

    total = 0
    with safe_open(str(path), framework="pt") as handle:
        for name in handle.keys():
            n = 1
            for dim in handle.get_slice(name).get_shape():
                n *= dim
            total += n
    return total
