# Demo twin of mamba-yolo-l_pafpn_8xb64-300e_coco.py: Mamba-YOLO-L with the demo recipe of
# mamba-yolo-t_pafpn_demo-coco.py.
_base_ = './mamba-yolo-t_pafpn_demo-coco.py'
widths = [192, 384, 576]
model = dict(
    backbone=dict(arch='l'),
    neck=dict(in_channels=widths, out_channels=widths, num_ss2d=2),
    bbox_head=dict(in_channels=widths))
