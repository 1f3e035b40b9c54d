# CATANet x4: the official train_CATANet_x4_finetune.yml, 250k iterations, lr halved at
# 125k/200k/225k/237.5k. The paper fine-tunes from x2: set load_from to an x2 checkpoint (the
# upsampler's weights differ in shape and are reported as not loaded).
_base_ = ['./catanet_x2_4xb16-800k_div2k.py']
scale = 4
model = dict(generator=dict(upscale=scale))
train_dataloader = dict(dataset=dict(scale=scale))
val_dataloader = dict(dataset=dict(scale=scale))
test_dataloader = dict(dataset=dict(scale=scale))
param_scheduler = dict(milestones=[125000, 200000, 225000, 237500])
train_cfg = dict(max_iters=250000)
