# DLGSANet-Light x3: the official ..._Light_..._SRx3 config (same schedule as Tiny x2).
_base_ = ['./dlgsanet-tiny_x2_2xb8-500k_div2k.py']
scale = 3
model = dict(generator=dict(arch='light', upscale=scale))
train_dataloader = dict(dataset=dict(scale=scale))
val_dataloader = dict(dataset=dict(scale=scale))
test_dataloader = dict(dataset=dict(scale=scale))
