"""GroupPoseLabel: normalised targets and their inverse."""
import numpy as np

from plugins.tasks.pose.codec import GroupPoseLabel


def test_encode_then_decode_gives_back_the_keypoints():
    codec = GroupPoseLabel(num_keypoints=17, num_select=2)
    rng = np.random.RandomState(0)
    kpts = rng.uniform([0, 0], [160, 120], size=(3, 17, 2)).astype(np.float32)
    enc = codec.encode(kpts, np.ones((3, 17)), img_shape=(120, 160),
                       area=np.array([100., 200., 300.]))
    assert enc['keypoint_labels'].shape == (3, 17, 2)
    assert enc['keypoint_labels'].min() >= 0 and enc['keypoint_labels'].max() < 1
    np.testing.assert_allclose(enc['area_labels'], np.array([100., 200., 300.]) / (160 * 120),
                               rtol=1e-6)
    scores = np.array([0.2, 0.9, 0.5], np.float32)
    dec_kpts, dec_scores = codec.decode(scores, enc['keypoint_labels'], img_shape=(120, 160))
    np.testing.assert_allclose(dec_scores, [0.9, 0.5])
    np.testing.assert_allclose(dec_kpts, kpts[[1, 2]], rtol=1e-5, atol=1e-3)


def test_unlabelled_and_crowd_people_are_dropped_and_labelled_keypoints_keep_their_weight():
    kpts = np.full((3, 17, 2), 10., np.float32)
    kpts[0, 0] = [-5, 10]                    # outside the image
    vis = np.ones((3, 17))
    vis[1] = 0                               # nobody labelled: dropped
    kwargs = dict(img_shape=(50, 50), area=np.ones(3), iscrowd=np.array([0, 0, 1]))  # crowd
    enc = GroupPoseLabel(num_keypoints=17).encode(kpts, vis, **kwargs)
    assert enc['keypoint_labels'].shape == (1, 17, 2)
    assert enc['keypoint_weights'].all()     # official: visibility decides, not the position
    enc = GroupPoseLabel(num_keypoints=17, ignore_outside=True).encode(kpts, vis, **kwargs)
    assert enc['keypoint_weights'][0, 0] == 0 and enc['keypoint_weights'][0, 1:].all()


def test_decode_ranks_query_class_pairs_and_keeps_the_person_class():
    codec = GroupPoseLabel(num_keypoints=17, num_select=3)
    kpts = np.random.RandomState(1).rand(3, 17, 2).astype(np.float32)
    # (query, class) probabilities; class 1 is the person (COCO category 1)
    scores = np.array([[0.95, 0.10], [0.20, 0.80], [0.30, 0.70]], np.float32)
    dec_kpts, dec_scores = codec.decode(scores, kpts, img_shape=(10, 20))
    # top 3 pairs: (0, class 0), (1, person), (2, person); the class-0 pair is not a person
    np.testing.assert_allclose(dec_scores, [0.8, 0.7])
    np.testing.assert_allclose(dec_kpts, kpts[[1, 2]] * np.array([20, 10]), rtol=1e-6)


def test_no_people_encodes_empty_targets():
    enc = GroupPoseLabel().encode(np.zeros((0, 17, 2)), np.zeros((0, 17)), img_shape=(32, 32),
                                  area=np.zeros(0))
    assert enc['keypoint_labels'].shape == (0, 17, 2) and enc['area_labels'].shape == (0, )


def test_missing_area_falls_back_to_the_keypoint_box():
    kpts = np.zeros((1, 17, 2), np.float32)
    kpts[0, :, 0] = np.linspace(0, 10, 17)
    kpts[0, :, 1] = np.linspace(0, 20, 17)
    enc = GroupPoseLabel().encode(kpts, np.ones((1, 17)), img_shape=(100, 100))
    np.testing.assert_allclose(enc['area_labels'], [10 * 20 * 0.53 / 1e4], rtol=1e-5)
