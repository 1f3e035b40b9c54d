"""Mixed precision on CPU: bfloat16 autocast for training (``tools/train.py --amp``).

mmengine's ``AmpOptimWrapper`` refuses to run without a GPU/NPU/MLU. On CPU, bfloat16 autocast
needs no loss scaling (bf16 keeps fp32's exponent range), so the wrapper only has to open the
autocast context around the forward pass; gradients and the update stay in fp32.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under ``torch.autocast('cpu', dtype)``."""

    def __init__(self, *args, dtype: str = 'bfloat16', **kwargs):
        super().__init__(*args, **kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
