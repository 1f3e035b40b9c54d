# Mamba-YOLO-B on COCO at 640 (Mamba-YOLO-B.yaml: width 0.50, depth 0.33), the recipe of
# mamba-yolo-t_pafpn_8xb64-300e_coco.py. Paper (README "Mamba YOLO-M"): 49.1 box AP.
_base_ = './mamba-yolo-t_pafpn_8xb64-300e_coco.py'
widths = [128, 256, 512]
model = dict(
    backbone=dict(arch='b'),
    neck=dict(in_channels=widths, out_channels=widths, num_ss2d=1),
    bbox_head=dict(in_channels=widths))
