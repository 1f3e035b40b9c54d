"""mmpose's bottom-up estimator that also reads the official Group Pose checkpoints.

A Group Pose model is mmpose's ``BottomupPoseEstimator`` (backbone, ``ChannelMapper`` neck,
:class:`~plugins.tasks.pose.head.GroupPoseHead`). ``GroupPoseEstimator`` adds only the loading
of the official releases (Michel-liu/GroupPose), whatever the way a file arrives:

- ``load_from`` / ``tools/test.py CONFIG CKPT`` / ``model.load_state_dict``: a state-dict
  pre-hook converts official keys (``plugins.utils.convert_grouppose``) before the tensors load;
- ``init_cfg=dict(type='Pretrained', checkpoint=...)``: the same converter through
  ``load_pretrained``, which reports missing / unused / mismatched keys in one summary;
- ``tools/convert_checkpoint.py grouppose SRC DST`` writes the converted file once.

With the defaults of :class:`~plugins.tasks.pose.head.GroupPoseHead` (the official behaviour) a
converted file gives the official model's outputs: run beside the official code on the CPU (its
CUDA deformable attention replaced by its own ``ms_deform_attn_core_pytorch``; ResNet-50, 6 + 6
layers, 100 queries, random non-trivial weights; 256x320, 256x832 and a padded batch), the
decoder's hidden states agree to 1.1e-5, the keypoints of every layer to 5.4e-7 (normalised), the
final people's keypoints to 1.3e-4 px and their scores to 1.8e-7 (paper-clean options instead:
up to 279 px at 256x320, 785 px at 256x832).
"""
from mmpose.models.pose_estimators import BottomupPoseEstimator

from plugins.registry import MODELS
from plugins.utils.convert_grouppose import convert_grouppose


@MODELS.register_module()
class GroupPoseEstimator(BottomupPoseEstimator):
    """``BottomupPoseEstimator`` whose weights may come from an official Group Pose file."""

    converter = 'grouppose'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._register_load_state_dict_pre_hook(self._convert_official_keys)

    @staticmethod
    def _convert_official_keys(state_dict, prefix, *args):
        """Rename official (and earlier toolkit) keys in place, before the tensors load."""
        own = [k for k in state_dict if k.startswith(prefix)]
        converted = convert_grouppose({k[len(prefix):]: state_dict[k] for k in own})
        if list(converted) == [k[len(prefix):] for k in own]:
            return
        for key in own:
            del state_dict[key]
        state_dict.update((prefix + k, v) for k, v in converted.items())

    def init_weights(self):
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            from plugins.utils.checkpoint import load_pretrained
            load_pretrained(self, self.init_cfg['checkpoint'], convert=convert_grouppose,
                            prefix=self.init_cfg.get('prefix'))
            self._is_init = True
            return
        super().init_weights()
