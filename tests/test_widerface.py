"""WIDER FACE val AP: the real file layout on a tiny set, the kit's matching rules, errors naming file and line."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import scipy.io

from facezoo.accuracy.widerface import (
    SPLIT_FILES,
    WiderFaceError,
    evaluate,
    evaluate_detector,
    kit_iou,
    load_wider,
    load_wider_text,
    write_split_mats,
)
from facezoo.tasks.detectors.face import Face

GT_NAME = "wider_face_split/wider_face_val_bbx_gt.txt"
# (event/name.jpg, faces as (x, y, w, h, invalid)); the third image's second face is invalid,
# the fourth image has no face.
IMAGES = [
    ("0--Parade/0_Parade_marchingband_1_1.jpg", [(10, 10, 60, 60, 0), (100, 10, 30, 30, 0), (150, 150, 10, 10, 0)]),
    ("0--Parade/0_Parade_marchingband_1_2.jpg", [(20, 20, 80, 80, 0)]),
    ("1--Handshaking/1_Handshaking_Handshaking_1_1.jpg", [(10, 10, 50, 50, 0), (120, 120, 40, 40, 1)]),
    ("1--Handshaking/1_Handshaking_Handshaking_1_2.jpg", []),
    ("2--Demonstration/2_Demonstration_Protesters_2_1.jpg", [(30, 30, 60, 60, 0), (140, 20, 12, 12, 0)]),
    ("2--Demonstration/2_Demonstration_Protesters_2_2.jpg", [(50, 50, 40, 40, 0)]),
]
KEYS = [path[: -len(".jpg")] for path, _ in IMAGES]
# Which faces count (1-based, as the kit): hard ⊇ medium ⊇ easy; the invalid face is in none.
EASY = {KEYS[0]: [1], KEYS[1]: [1], KEYS[2]: [1], KEYS[4]: [1]}
MEDIUM = {**EASY, KEYS[0]: [1, 2], KEYS[5]: [1]}
HARD = {**MEDIUM, KEYS[0]: [1, 2, 3], KEYS[4]: [1, 2]}
SPLITS = {"easy": EASY, "medium": MEDIUM, "hard": HARD}
FACES = {"easy": 4, "medium": 6, "hard": 8}


def gt_lines() -> list[str]:
    """The ground truth as the real file writes it (trailing space; one zero row for a faceless image)."""
    lines = []
    for path, faces in IMAGES:
        lines += [path, str(len(faces))]
        lines += [f"{x} {y} {w} {h} 0 0 0 {invalid} 0 0 " for x, y, w, h, invalid in faces] or ["0 0 0 0 0 0 0 0 0 0 "]
    return lines


def write_gt(root, lines) -> None:
    path = root / GT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def background(index: int) -> int:
    """Each image's flat gray level: how the sidecar detector tells the images apart."""
    return 40 + 30 * index


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("widerface")
    write_gt(root, gt_lines())
    sidecar = {}
    for index, (path, faces) in enumerate(IMAGES):
        image = np.full((200, 200, 3), background(index), np.uint8)
        for x, y, w, h, _ in faces:
            cv2.rectangle(image, (x, y), (x + w, y + h), (255, 255, 255), 1)
        target = root / "WIDER_val/images" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(target), image)
        sidecar[str(background(index))] = [[x, y, x + w, y + h] for x, y, w, h, _ in faces]
    (root / "sidecar.json").write_text(json.dumps(sidecar))
    write_split_mats(root / "eval_tools/ground_truth", load_wider_text(root), SPLITS)
    return root


@pytest.fixture(scope="module")
def wider(dataset):
    return load_wider(dataset)


def box(x, y, w, h, score):
    """A prediction exactly on a face: the kit's corner is x + w."""
    return [x, y, x + w, y + h, score]


def perfect(splits=("hard",), score_step=0.05) -> dict[str, np.ndarray]:
    """One exact box per face that counts in `splits`, all scores distinct."""
    wanted = {key: set() for key in KEYS}
    for split in splits:
        for key, faces in SPLITS[split].items():
            wanted[key] |= set(faces)
    rows, score = {}, 1.0
    for key, (_, faces) in zip(KEYS, IMAGES):
        rows[key] = []
        for number in sorted(wanted[key]):
            x, y, w, h, _ = faces[number - 1]
            rows[key].append(box(x, y, w, h, score))
            score -= score_step
    return {key: np.array(found).reshape(-1, 5) for key, found in rows.items()}


# ----------------------------------------------------------------------------- loading


def test_load_reads_text_images_and_splits(wider, dataset):
    assert len(wider.images) == 6 and wider.events == ["0--Parade", "1--Handshaking", "2--Demonstration"]
    first = wider.images[0]
    assert first.key == KEYS[0] and first.event == "0--Parade" and first.name == "0_Parade_marchingband_1_1"
    assert first.path == dataset / "WIDER_val/images" / IMAGES[0][0] and first.path.is_file()
    np.testing.assert_array_equal(first.boxes, [[10, 10, 60, 60], [100, 10, 30, 30], [150, 150, 10, 10]])
    assert wider.images[2].invalid.tolist() == [False, True]
    assert wider.images[3].boxes.shape == (0, 4)
    assert {split: wider.faces(split) for split in FACES} == FACES
    assert wider.images[0].keep["medium"].tolist() == [0, 1]
    assert wider.image(KEYS[1] + ".jpg") is wider.image("0_Parade_marchingband_1_2") is wider.images[1]


def test_split_files_have_the_kits_layout(dataset):
    mat = scipy.io.loadmat(str(dataset / "eval_tools/ground_truth" / SPLIT_FILES["medium"]))
    assert mat["event_list"].shape == (3, 1) and str(mat["event_list"][1][0][0]) == "1--Handshaking"
    assert str(mat["file_list"][0][0][1][0][0]) == "0_Parade_marchingband_1_2"
    np.testing.assert_array_equal(mat["gt_list"][0][0][0][0], [[1], [2]])
    assert mat["gt_list"][1][0][1][0].size == 0
    np.testing.assert_array_equal(mat["face_bbx_list"][1][0][1][0], [[0, 0, 0, 0]])  # the kit's faceless row
    assert mat["invalid_label_list"][1][0][0][0].ravel().tolist() == [0, 1]
    assert (dataset / "eval_tools/ground_truth/wider_face_val.mat").is_file()


def test_missing_split_files_name_them(tmp_path):
    write_gt(tmp_path, gt_lines())
    with pytest.raises(WiderFaceError) as raised:
        load_wider(tmp_path)
    message = str(raised.value)
    assert all(name in message for name in SPLIT_FILES.values())
    assert "eval_tools/ground_truth" in message and "write_split_mats" in message


def test_ground_truth_text_at_the_top_level(tmp_path):
    (tmp_path / "wider_face_val_bbx_gt.txt").write_text("\n".join(gt_lines()) + "\n")
    write_split_mats(tmp_path, load_wider_text(tmp_path), SPLITS)  # the .mat files at the top level too
    assert [image.key for image in load_wider(tmp_path).images] == KEYS


def test_split_file_must_cover_the_text(tmp_path, wider):
    write_gt(tmp_path, gt_lines() + ["3--Riot/3_Riot_Riot_3_1.jpg", "1", "1 1 5 5 0 0 0 0 0 0 "])
    write_split_mats(tmp_path / "eval_tools/ground_truth", wider, SPLITS)  # written for the six images only
    with pytest.raises(WiderFaceError, match=r"wider_easy_val\.mat: lacks 1 images .* 3--Riot/3_Riot_Riot_3_1"):
        load_wider(tmp_path)


@pytest.mark.parametrize(
    "edit, line, words",
    [
        # image 1 says 3 faces but has 2 rows: line 5 is the next image's path
        (lambda lines: lines[:4] + lines[5:], 5, "the face count on line 2 does not match"),
        # image 1 says 2 faces but has 3 rows: line 5 is a face row where a path belongs
        (lambda lines: lines[:1] + ["2"] + lines[2:], 5, "the face count on line 2 (2) does not match"),
        (lambda lines: lines[:3] + ["100 10 3O 30 0 0 0 0 0 0 "] + lines[4:], 4, "field 'w' is not a number: '3O'"),
        (lambda lines: lines[:3] + ["100 10 30 30 0 0 0 0 0"] + lines[4:], 4, "expected 10 numbers"),
        (lambda lines: lines[:1] + ["three"] + lines[2:], 2, "face count of 0--Parade/0_Parade_marchingband_1_1.jpg"),
        (lambda lines: lines[:-1], 21, "the file ends after 0 of the 1 faces"),
    ],
)
def test_malformed_ground_truth_names_file_and_line(tmp_path, edit, line, words):
    write_gt(tmp_path, edit(gt_lines()))
    with pytest.raises(WiderFaceError) as raised:
        load_wider_text(tmp_path)
    message = str(raised.value)
    assert f"wider_face_val_bbx_gt.txt:{line}:" in message and words in message


def test_split_numbers_must_name_faces(wider, tmp_path):
    with pytest.raises(WiderFaceError, match=r"0--Parade/0_Parade_marchingband_1_2 has 1 faces.*holds 2"):
        write_split_mats(tmp_path, wider, {**SPLITS, "easy": {**EASY, KEYS[1]: [2]}})


# ----------------------------------------------------------------------------- AP


def test_perfect_predictions_score_one_everywhere(wider):
    result = evaluate(wider, perfect())
    assert result.ap == {"easy": 1.0, "medium": 1.0, "hard": 1.0}
    assert result.faces == FACES and result.images == 6 and result.detections == 8
    assert "easy 1.0000" in result.summary()


@pytest.mark.parametrize("predictions", [{}, {key: np.zeros((0, 5)) for key in KEYS}])
def test_no_predictions_score_zero(wider, predictions):
    assert evaluate(wider, predictions).ap == {"easy": 0.0, "medium": 0.0, "hard": 0.0}


@pytest.mark.parametrize("scale, shift", [(1.0, 0.0), (100.0, -7.0)])
def test_half_found_after_a_higher_false_positive(wider, scale, shift):
    # Three detections, best first: a false positive (empty corner of image 2), then the easy faces
    # of images 1 and 3; the other faces are not found. Going down the thresholds, (detections, hits)
    # is (1, 0), (2, 1), (3, 2): precision 0, 1/2, 2/3 and its envelope 2/3 from recall 0 on.
    #   easy (4 faces):   recall 1/4, 2/4 -> AP = 2/4 * 2/3 = 1/3
    #   medium (6 faces): recall 1/6, 2/6 -> AP = 2/6 * 2/3 = 2/9
    #   hard (8 faces):   recall 1/8, 2/8 -> AP = 2/8 * 2/3 = 1/6
    # Min-max normalization makes the result independent of the scores' scale.
    predictions = {
        KEYS[1]: np.array([box(150, 150, 30, 30, 0.9)]),
        KEYS[0]: np.array([box(10, 10, 60, 60, 0.8)]),
        KEYS[2]: np.array([box(10, 10, 50, 50, 0.7)]),
    }
    for found in predictions.values():
        found[:, 4] = found[:, 4] * scale + shift
    ap = evaluate(wider, predictions).ap
    assert ap["easy"] == pytest.approx(1 / 3) and ap["medium"] == pytest.approx(2 / 9)
    assert ap["hard"] == pytest.approx(1 / 6)


def test_detections_on_ignored_faces_are_not_false_positives(wider):
    predictions = perfect(("easy",))
    top = 2.0  # above every other score: a false positive here would cost precision at once
    predictions[KEYS[2]] = np.vstack([predictions[KEYS[2]], box(120, 120, 40, 40, top)])  # the invalid face
    predictions[KEYS[4]] = np.vstack([predictions[KEYS[4]], box(140, 20, 12, 12, top)])  # a hard-only face
    ap = evaluate(wider, predictions).ap
    assert ap["easy"] == 1.0
    assert ap["hard"] == pytest.approx(5 / 8)  # recall 5/8 at precision 1 (the invalid face is ignored there too)


def test_detections_on_a_faceless_image_are_false_positives(wider):
    # The kit gives a faceless image one all-zero face that counts nowhere: a detection elsewhere on
    # it is a false positive. Best first: (1, 0), then 4 hits: precision 1/2, 2/3, 3/4, 4/5, whose
    # envelope is 4/5 up to recall 1: AP = 4/5.
    predictions = perfect(("easy",))
    predictions[KEYS[3]] = np.array([box(50, 50, 40, 40, 2.0)])
    assert evaluate(wider, predictions).ap["easy"] == pytest.approx(0.8)


@pytest.mark.parametrize("iou, hit", [(0.51, True), (0.49, False)])
def test_iou_half_decides_a_match(wider, iou, hit):
    # Image 2's face (20, 20, 80, 80) spans 20..100, 81 pixels a side in the kit's convention; moving a
    # copy right by d leaves IoU (81 - d) / (81 + d), so d = 81 (1 - iou) / (1 + iou).
    d = 81 * (1 - iou) / (1 + iou)
    shifted = [20 + d, 20, 100 + d, 100]
    assert kit_iou(np.array([shifted]), np.array([[20, 20, 100, 100]]))[0, 0] == pytest.approx(iou)
    predictions = {KEYS[1]: np.array([[*shifted, 0.9]]), KEYS[5]: np.array([box(150, 150, 20, 20, 0.1)])}
    # A hit, then a false positive: recall 1/4 of easy at precision 1 -> AP 1/4; no hit -> 0.
    assert evaluate(wider, predictions).ap["easy"] == pytest.approx(0.25 if hit else 0.0)


def test_predictions_must_name_known_images_and_have_five_columns(wider):
    with pytest.raises(WiderFaceError, match="not an image of"):
        evaluate(wider, {"0--Parade/nope": np.zeros((0, 5))})
    with pytest.raises(WiderFaceError, match=r"expected M×5"):
        evaluate(wider, {KEYS[0]: np.zeros((2, 4))})


def test_evaluate_detector_with_boxes_from_a_sidecar(dataset):
    sidecar = json.loads((dataset / "sidecar.json").read_text())
    seen = []

    def detect(image: np.ndarray) -> list[Face]:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8  # BGR as cv2.imread
        level = int(round(float(np.median(image[:5, :5])) / 10.0)) * 10
        boxes = sidecar[str(level)]
        return [Face(box=tuple(map(float, b)), score=1.0 - 0.1 * k, landmarks=np.zeros((5, 2), np.float32))
                for k, b in enumerate(boxes)]

    result = evaluate_detector(dataset, detect, progress=lambda done, total: seen.append((done, total)))
    assert result.ap == {"easy": 1.0, "medium": 1.0, "hard": 1.0}
    assert result.detections == 9  # every face, the invalid one included: it is ignored, not false
    assert seen[0] == (1, 6) and seen[-1] == (6, 6) and len(seen) == 6
