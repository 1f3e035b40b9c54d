# Mamba-YOLO-L on COCO at 640 (Mamba-YOLO-L.yaml: width 0.75, depth 0.67, at most 768 channels
# before scaling: two SS2D per neck block), the recipe of mamba-yolo-t_pafpn_8xb64-300e_coco.py.
# Paper: 52.1 box AP.
_base_ = './mamba-yolo-t_pafpn_8xb64-300e_coco.py'
widths = [192, 384, 576]
model = dict(
    backbone=dict(arch='l'),
    neck=dict(in_channels=widths, out_channels=widths, num_ss2d=2),
    bbox_head=dict(in_channels=widths))
