# Demo twin of mixersr_channel-group-attn_x2_2xb8-500k_div2k.py on the scikit-image demo set.
_base_ = ['./catanet_x2_demo.py']
model = dict(generator=dict(_delete_=True, type='MixerSRNet', upscale=2, dim=48, num_heads=4,
                            groups=3, blocks=2, mixer=dict(type='ChannelGroupAttention')))
