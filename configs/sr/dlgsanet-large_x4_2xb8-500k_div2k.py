# DLGSANet-Large x4: the official ..._Large_..._SRx4 config (same schedule as Tiny x2).
_base_ = ['./dlgsanet-tiny_x2_2xb8-500k_div2k.py']
scale = 4
model = dict(generator=dict(arch='large', upscale=scale))
train_dataloader = dict(dataset=dict(scale=scale))
val_dataloader = dict(dataset=dict(scale=scale))
test_dataloader = dict(dataset=dict(scale=scale))
