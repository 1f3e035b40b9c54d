# Group Pose with ResNet-50 on CrowdPose (14 keypoints, trainval / test split as mmpose
# prepares it). The paper reports CrowdPose only with Swin-L (74.1 AP test,
# plugins/tasks/pose/reference.yaml); the model settings here are those of the COCO config.
_base_ = ['./grouppose_r50_8xb2-60e_coco.py']
num_keypoints = 14
codec = dict(type='GroupPoseLabel', num_keypoints=num_keypoints, num_select=50)
model = dict(head=dict(num_keypoints=num_keypoints, codec=codec))
data_root = 'data/crowdpose/'
dataset_type = 'CrowdPoseDataset'
scales = [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800]
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GroupPoseKeepLabelledPeople'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomChoice', transforms=[
        [dict(type='GroupPoseRandomResize', scales=scales, max_size=1333)],
        [dict(type='GroupPoseRandomResize', scales=[400, 500, 600]),
         dict(type='GroupPoseRandomSizeCrop', min_size=384, max_size=600),
         dict(type='GroupPoseRandomResize', scales=scales, max_size=1333)]]),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, ann_file='annotations/mmpose_crowdpose_trainval.json',
    data_prefix=dict(img='images/'), pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, ann_file='annotations/mmpose_crowdpose_test.json',
    data_prefix=dict(img='images/')))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric',
                     ann_file=data_root + 'annotations/mmpose_crowdpose_test.json',
                     nms_mode='none', score_mode='keypoint', use_area=False,
                     iou_type='keypoints_crowd', prefix='crowdpose')
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='crowdpose/AP'))
