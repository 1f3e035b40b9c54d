"""Samplers that give every process the same samples, for sequence parallelism.

Under ``tools/dist_train.sh`` mmengine's samplers give each process its own share of the data
(data parallelism). With ``sequence_parallel=True`` (``GlobalSelfAttention``, SG-Former) the
processes share each image's tokens instead, so they must hold the same batch: these are
mmengine's ``DefaultSampler`` / ``InfiniteSampler`` as in a one-process run, in every process
(the seed is the run's, the same everywhere). Use them for training; keep the default samplers for
validation and testing (the metrics collect one share per process; the attention then runs
unsharded on each process's own images, with the same result).

With data-loading workers, random augmentations must not depend on the process either: mmengine
seeds worker ``w`` of process ``r`` with ``seed + r * num_workers + w``; give the training loader
``worker_init_fn=dict(type='replicated_worker_init_fn', num_workers=N, seed=S)`` (S: the config's
``randomness.seed``) to seed every process's workers as process 0's.
"""
from mmengine.dataset import DefaultSampler, InfiniteSampler, worker_init_fn
from mmengine.registry import DATA_SAMPLERS, FUNCTIONS


@DATA_SAMPLERS.register_module()
class ReplicatedDefaultSampler(DefaultSampler):
    """``DefaultSampler`` (epoch-based loops) yielding the whole data set in every process."""

    def __init__(self, dataset, shuffle: bool = True, seed=None, round_up: bool = True):
        super().__init__(dataset, shuffle=shuffle, seed=seed, round_up=round_up)
        self.rank, self.world_size = 0, 1
        self.num_samples = self.total_size = len(self.dataset)


@DATA_SAMPLERS.register_module()
class ReplicatedInfiniteSampler(InfiniteSampler):
    """``InfiniteSampler`` (iteration-based loops) yielding the same stream in every process."""

    def __init__(self, dataset, shuffle: bool = True, seed=None):
        super().__init__(dataset, shuffle=shuffle, seed=seed)
        self.rank, self.world_size = 0, 1
        self.indices = self._indices_of_rank()


@FUNCTIONS.register_module()
def replicated_worker_init_fn(worker_id: int, num_workers: int, seed: int) -> None:
    """mmengine's worker seeding as in process 0, in every process."""
    worker_init_fn(worker_id, num_workers=num_workers, rank=0, seed=seed)
