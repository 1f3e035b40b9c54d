# The generic SR trunk with a toolkit mixer in place of the paper's attention: DaViT's channel
# group attention (linear in the number of tokens), DLGSANet-Tiny's training schedule.
# Any registered mixer works: mixer=dict(type='<Mixer>', **its_params).
_base_ = ['./dlgsanet-tiny_x2_2xb8-500k_div2k.py']
model = dict(generator=dict(_delete_=True, type='MixerSRNet', upscale=2, dim=48, num_heads=4,
                            groups=3, blocks=2, mixer=dict(type='ChannelGroupAttention')))
