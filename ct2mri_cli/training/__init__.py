"""Training ct2mri on preprocessed CT/MRI pairs (``ct2mri train``).

Modules, one job each: :mod:`.config` (settings), :mod:`.data` (windows in memory),
:mod:`.window_order` (the order training windows are visited in), :mod:`.ema`, :mod:`.loop` (the optimisation),
:mod:`.checkpoint`, :mod:`.export`, :mod:`.validation`, :mod:`.monitor` (progress and log),
:mod:`.distributed` (torchrun / DDP) and :mod:`.rundir` (the output folder).
"""

from .config import TrainConfig, config_from_dict, load_config
from .loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "config_from_dict", "load_config", "train"]
