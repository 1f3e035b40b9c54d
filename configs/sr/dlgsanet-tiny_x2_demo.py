# Demo twin of dlgsanet-tiny_x2_2xb8-500k_div2k.py on the scikit-image demo set (CPU minutes).
_base_ = ['./catanet_x2_demo.py']
model = dict(generator=dict(_delete_=True, type='DLGSANet', arch='tiny', upscale=2))
custom_hooks = [dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.01,
                     update_buffers=True, priority=49)]
