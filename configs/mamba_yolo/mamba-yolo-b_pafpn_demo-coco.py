# Demo twin of mamba-yolo-b_pafpn_8xb64-300e_coco.py: Mamba-YOLO-B with the demo recipe of
# mamba-yolo-t_pafpn_demo-coco.py.
_base_ = './mamba-yolo-t_pafpn_demo-coco.py'
widths = [128, 256, 512]
model = dict(
    backbone=dict(arch='b'),
    neck=dict(in_channels=widths, out_channels=widths, num_ss2d=1),
    bbox_head=dict(in_channels=widths))
