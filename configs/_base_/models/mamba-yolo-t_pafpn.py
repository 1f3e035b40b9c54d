# Mamba-YOLO-T (model only): the ODMamba backbone (P3-P5), the PAFPN with XSSBlocks and the YOLOv8
# decoupled head, as ultralytics/cfg/models/mamba-yolo/Mamba-YOLO-T.yaml builds them, in mmdet's
# SingleStageDetector. Images are scaled to [0, 1] in RGB (no mean / std), batches padded to a
# multiple of 32 with Ultralytics' grey 114 (after scaling: 114 / 255).
custom_imports = dict(imports=['plugins'], allow_failed_imports=False)
widths = [64, 128, 256]
model = dict(
    type='SingleStageDetector',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_value=114 / 255),
    backbone=dict(type='MambaYOLO', arch='t', out_indices=(1, 2, 3)),
    neck=dict(type='MambaYOLOPAFPN', in_channels=widths, out_channels=widths, num_ss2d=1),
    bbox_head=dict(type='YOLOv8Head', num_classes=80, in_channels=widths, strides=(8, 16, 32),
                   reg_max=16),
    train_cfg=dict(assigner=dict(type='YOLOTaskAlignedAssigner', topk=10), alpha=0.5, beta=6.0),
    test_cfg=dict(nms_pre=30000, score_thr=0.001, nms=dict(type='nms', iou_threshold=0.7),
                  max_per_img=300))
