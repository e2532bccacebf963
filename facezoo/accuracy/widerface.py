"""WIDER FACE val: AP on the easy / medium / hard settings, computed the way the official kit does.

Ground truth: ``wider_face_split/wider_face_val_bbx_gt.txt``: per image a path under
``WIDER_val/images/`` (``0--Parade/0_Parade_marchingband_1_465.jpg``), a face count, then one
``x y w h blur expression illumination invalid occlusion pose`` row per face (an image with no
face still has one row, of zeros). Which faces count in each setting comes from the evaluation
kit's ``.mat`` files (``gt_list``: 1-based face indices per image); the other faces are ignored:
a detection on them is neither a hit nor a false positive.

The metric follows the kit's MATLAB code (eval_tools: read_pred, norm_score, evaluation, VOCap),
so that numbers compare with published ones:

- each image's detections are sorted by score, best first; scores are min-max normalized over all
  detections of all images (in single precision, as the kit's ``realmin('single')`` start makes it);
- a detection belongs to the face it overlaps most (IoU with the kit's whole-pixel +1 convention,
  ``x2 = x + w``); at IoU >= 0.5 on an ignored face it is dropped, on a counted face not yet found
  it is a hit, and otherwise (a miss, or a second hit on a found face) a false positive. An image
  without faces has one all-zero face in the kit, so detections there are false positives;
- at 1000 thresholds (0.999 down to 0) detections and hits are summed over images: precision =
  hits / detections kept, recall = hits / faces counted in the setting;
- AP is the VOC area under the precision envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from facezoo.accuracy.datasets import DatasetError
from facezoo.images import IMAGE_SUFFIXES, read_image

SPLITS = ("easy", "medium", "hard")
#: The kit's setting files (gt_list per image) and its all-faces file (no gt_list).
SPLIT_FILES = {"easy": "wider_easy_val.mat", "medium": "wider_medium_val.mat", "hard": "wider_hard_val.mat"}
ALL_FACES_FILE = "wider_face_val.mat"
#: Where, under the dataset folder, each part is looked for (first found wins).
GT_TEXT_PLACES = ("wider_face_split/wider_face_val_bbx_gt.txt", "wider_face_val_bbx_gt.txt")
SPLIT_FILE_PLACES = ("eval_tools/ground_truth", ".")
IMAGES_PLACE = "WIDER_val/images"
#: One ground-truth row, in file order; the attributes are stored in the kit's ``<name>_label_list``.
GT_COLUMNS = ("x", "y", "w", "h", "blur", "expression", "illumination", "invalid", "occlusion", "pose")
ATTRIBUTES = GT_COLUMNS[4:]
IOU_THRESHOLD = 0.5
THRESHOLD_COUNT = 1000
#: The kit's score thresholds: 1 - t/1000 for t = 1..1000 (0.999 .. 0.0).
THRESHOLDS = 1.0 - np.arange(1, THRESHOLD_COUNT + 1) / THRESHOLD_COUNT

_MAT_KEYS = ("event_list", "file_list", "gt_list")  # what a setting file must hold


class WiderFaceError(DatasetError):
    """The WIDER FACE ground truth, split files or predictions are missing or malformed."""


@dataclass(frozen=True)
class WiderImage:
    """One val image and its faces, in the ground-truth text's order."""

    path: Path  # the image file (need not exist when predictions are given directly)
    event: str  # "0--Parade"
    name: str  # "0_Parade_marchingband_1_465": no suffix, as the kit's file_list
    boxes: np.ndarray = field(repr=False)  # K×4 float64 x, y, w, h in pixels
    invalid: np.ndarray = field(repr=False)  # K bool
    attributes: np.ndarray = field(repr=False)  # K×6 int, ATTRIBUTES order
    line: int = 0  # where its record starts in the ground-truth text
    keep: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # split → 0-based faces that count

    @property
    def key(self) -> str:
        """"event/name": how predictions and split lists name the image."""
        return f"{self.event}/{self.name}"

    @property
    def face_count(self) -> int:
        return len(self.boxes)


@dataclass
class WiderSet:
    """The val images with their faces and, once loaded, which faces count in each setting."""

    root: Path
    gt_file: Path
    images_dir: Path
    images: list[WiderImage]
    split_files: dict[str, Path] = field(default_factory=dict)  # empty until the .mat files are read

    @property
    def events(self) -> list[str]:
        """Event folders in the order they first appear (the kit's event_list order)."""
        return list(dict.fromkeys(image.event for image in self.images))

    def faces(self, split: str) -> int:
        """Faces that count in `split`."""
        return sum(len(image.keep[split]) for image in self.images)

    def image(self, key: str) -> WiderImage:
        """The image a prediction or split list names: "event/name", with or without its suffix, or the bare name."""
        found = self._lookup.get(_strip_suffix(key.replace("\\", "/")))
        if found is None:
            known = ", ".join(image.key for image in self.images[:3])
            raise WiderFaceError(f"{key!r} is not an image of {self.gt_file} (or the name is not unique); "
                                 f"images are named like {known}")
        return found

    @cached_property
    def _lookup(self) -> dict[str, WiderImage | None]:
        lookup: dict[str, WiderImage | None] = {}
        for image in self.images:
            lookup[image.name] = None if image.name in lookup else image  # a shared name names nothing
        lookup.update((image.key, image) for image in self.images)
        return lookup


@dataclass(frozen=True)
class WiderResult:
    """AP per setting and what it was computed over."""

    ap: dict[str, float]  # split → AP (nan where no face counts)
    images: int
    faces: dict[str, int]  # split → faces that count
    detections: int  # all predicted boxes evaluated
    iou_threshold: float = IOU_THRESHOLD
    #: split → T×3 rows of threshold, precision (nan where nothing passes), recall
    curves: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        aps = "  ".join(f"{split} {self.ap[split]:.4f}" for split in SPLITS)
        return f"WIDER FACE val AP: {aps} ({self.images} images, {self.detections} detections)"

    def as_dict(self) -> dict:
        return {"ap": dict(self.ap), "images": self.images, "faces": dict(self.faces),
                "detections": self.detections, "iou_threshold": self.iou_threshold}


# ----------------------------------------------------------------------------- loading


def load_wider(dataset_dir: str | Path) -> WiderSet:
    """The val ground truth with the kit's easy / medium / hard face lists attached."""
    wider_set = load_wider_text(dataset_dir)
    folder = _find_split_folder(wider_set.root)
    keeps: dict[str, dict[str, np.ndarray]] = {}
    for split in SPLITS:
        keeps[split] = _read_split_file(folder / SPLIT_FILES[split], wider_set)
    images = [replace(image, keep={split: keeps[split][image.key] for split in SPLITS}) for image in wider_set.images]
    split_files = {split: folder / SPLIT_FILES[split] for split in SPLITS}
    return WiderSet(wider_set.root, wider_set.gt_file, wider_set.images_dir, images, split_files)


def load_wider_text(dataset_dir: str | Path) -> WiderSet:
    """The val ground truth from the text alone (no settings yet): enough to write the split files."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise WiderFaceError(f"{root}: not a folder (expected the WIDER FACE dataset folder)")
    gt_file = _find_gt_text(root)
    images_dir = root / IMAGES_PLACE
    return WiderSet(root, gt_file, images_dir, read_gt_text(gt_file, images_dir))


def _find_gt_text(root: Path) -> Path:
    places = [root / place for place in GT_TEXT_PLACES]
    for path in places:
        if path.is_file():
            return path
    raise WiderFaceError(f"{root}: no WIDER FACE val ground truth: expected {' or '.join(map(str, places))} "
                         "(from wider_face_split.zip)")


def _find_split_folder(root: Path) -> Path:
    """The first place holding all three setting files: they must come together to mean anything."""
    places = [root / place for place in SPLIT_FILE_PLACES]
    for folder in places:
        if all((folder / name).is_file() for name in SPLIT_FILES.values()):
            return folder
    names = ", ".join(SPLIT_FILES.values())
    raise WiderFaceError(f"{root}: the WIDER FACE easy/medium/hard split files are missing: expected {names} "
                         f"together in {' or '.join(map(str, places))} (the official kit's eval_tools/ground_truth; "
                         "from lists of your own, write them with write_split_mats)")


# ----------------------------------------------------------------------------- the ground-truth text


def read_gt_text(gt_file: Path, images_dir: Path) -> list[WiderImage]:
    """Every image record of a ``wider_face_*_bbx_gt.txt``; errors name the file and line."""
    try:
        lines = Path(gt_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise WiderFaceError(f"{gt_file}: cannot read: {exc}") from None
    images: list[WiderImage] = []
    seen: dict[str, int] = {}
    cursor = _skip_blank(lines, 0)
    while cursor < len(lines):
        image, cursor = _read_record(Path(gt_file), lines, cursor, Path(images_dir))
        if image.key in seen:
            raise WiderFaceError(f"{gt_file}:{image.line}: {image.key} is listed again "
                                 f"(first on line {seen[image.key]})")
        seen[image.key] = image.line
        images.append(image)
        cursor = _skip_blank(lines, cursor)
    if not images:
        raise WiderFaceError(f"{gt_file}: no image records")
    return images


def _skip_blank(lines: list[str], cursor: int) -> int:
    while cursor < len(lines) and not lines[cursor].strip():
        cursor += 1
    return cursor


def _read_record(gt_file: Path, lines: list[str], cursor: int, images_dir: Path) -> tuple[WiderImage, int]:
    """One image: its path line, its count line, its face rows; returns the image and the next line index."""
    path_line = cursor + 1
    relative = lines[cursor].strip()
    if not _looks_like_path(relative):
        raise WiderFaceError(f"{gt_file}:{path_line}: expected an image path (event/name.jpg), found {relative!r}"
                             + _count_hint(lines, cursor))
    event, name = _split_image_path(gt_file, path_line, relative)
    count = _read_count(gt_file, lines, cursor + 1, relative)
    rows = [_read_face(gt_file, lines, cursor + 2 + k, relative, k, count) for k in range(count)]
    cursor += 2 + count
    if count == 0 and cursor < len(lines) and lines[cursor].strip() and not _looks_like_path(lines[cursor].strip()):
        _parse_face_row(gt_file, cursor + 1, lines[cursor].split())  # the all-zero row a faceless image carries
        cursor += 1
    table = np.asarray(rows, dtype=np.float64).reshape(count, len(GT_COLUMNS))
    attributes = table[:, 4:].astype(np.int64)
    image = WiderImage(path=images_dir / relative, event=event, name=name, boxes=table[:, :4].copy(),
                       invalid=attributes[:, ATTRIBUTES.index("invalid")] != 0, attributes=attributes, line=path_line)
    return image, cursor


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.lower().endswith(IMAGE_SUFFIXES)


def _count_hint(lines: list[str], cursor: int) -> str:
    """Where a face row appears in place of a path, the count above it is the usual culprit."""
    for back in range(cursor - 1, -1, -1):
        if _looks_like_path(lines[back].strip()):
            return (f": the face count on line {back + 2} ({lines[back + 1].strip()}) does not match "
                    "the face rows that follow")
    return ""


def _split_image_path(gt_file: Path, line: int, relative: str) -> tuple[str, str]:
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if len(parts) != 2 or not parts[1].lower().endswith(IMAGE_SUFFIXES):
        raise WiderFaceError(f"{gt_file}:{line}: expected an image path event/name.jpg, found {relative!r}")
    return parts[0], _strip_suffix(parts[1])


def _strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read_count(gt_file: Path, lines: list[str], index: int, relative: str) -> int:
    if index >= len(lines):
        raise WiderFaceError(f"{gt_file}:{index}: the file ends after the path of {relative}: expected its face count")
    text = lines[index].strip()
    try:
        count = int(text)
    except ValueError:
        raise WiderFaceError(f"{gt_file}:{index + 1}: the face count of {relative} is not a whole number: "
                             f"{text!r}") from None
    if count < 0:
        raise WiderFaceError(f"{gt_file}:{index + 1}: the face count of {relative} is negative: {count}")
    return count


def _read_face(gt_file: Path, lines: list[str], index: int, relative: str, k: int, count: int) -> list[float]:
    count_line = index - k  # 1-based line of the count: index of the first face row
    if index >= len(lines):
        raise WiderFaceError(f"{gt_file}:{index}: the file ends after {k} of the {count} faces of {relative}: "
                             f"the face count on line {count_line} does not match the face rows that follow")
    text = lines[index].strip()
    if not text or _looks_like_path(text):
        raise WiderFaceError(f"{gt_file}:{index + 1}: expected face {k + 1} of {count} of {relative}, found {text!r}: "
                             f"the face count on line {count_line} does not match the face rows that follow")
    return _parse_face_row(gt_file, index + 1, text.split())


def _parse_face_row(gt_file: Path, line: int, tokens: list[str]) -> list[float]:
    if len(tokens) != len(GT_COLUMNS):
        raise WiderFaceError(f"{gt_file}:{line}: expected {len(GT_COLUMNS)} numbers ({' '.join(GT_COLUMNS)}), "
                             f"found {len(tokens)}")
    values = []
    for column, token in zip(GT_COLUMNS, tokens):
        try:
            value = float(token)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value) or (column in ATTRIBUTES and value != int(value)):
            kind = "a whole number" if column in ATTRIBUTES else "a number"
            raise WiderFaceError(f"{gt_file}:{line}: field {column!r} is not {kind}: {token!r}")
        values.append(value)
    return values


# ----------------------------------------------------------------------------- the kit's .mat files


def _read_split_file(path: Path, wider_set: WiderSet) -> dict[str, np.ndarray]:
    """Image key → 0-based indices of the faces that count, checked against the ground-truth text."""
    listed = _read_gt_lists(path)
    known = {image.key: image for image in wider_set.images}
    strangers = [key for key in listed if key not in known]
    if strangers:
        raise WiderFaceError(f"{path}: {len(strangers)} images are not in {wider_set.gt_file}, e.g. {strangers[0]}")
    absent = [key for key in known if key not in listed]
    if absent:
        raise WiderFaceError(f"{path}: lacks {len(absent)} images of {wider_set.gt_file}, e.g. {absent[0]}")
    keeps = {}
    for key, (indices, rows) in listed.items():
        image = known[key]
        if rows is not None and rows != image.face_count and not (image.face_count == 0 and rows <= 1):
            raise WiderFaceError(f"{path}: {key} has {rows} faces in face_bbx_list but {image.face_count} in "
                                 f"{wider_set.gt_file}:{image.line}")
        keeps[key] = _zero_based(path, key, indices, image.face_count)
    return keeps


def _read_gt_lists(path: Path) -> dict[str, tuple[np.ndarray, int | None]]:
    """Image key → (gt_list entry, face_bbx_list row count or None) from one setting file."""
    mat = _load_mat(path)
    missing = [key for key in _MAT_KEYS if key not in mat]
    if missing:
        raise WiderFaceError(f"{path}: lacks {', '.join(missing)} (expected the kit's {', '.join(_MAT_KEYS)})")
    events = [_text(path, "event_list", cell) for cell in _cells(path, "event_list", mat["event_list"])]
    files = _cells(path, "file_list", mat["file_list"])
    gts = _cells(path, "gt_list", mat["gt_list"])
    boxes = _cells(path, "face_bbx_list", mat["face_bbx_list"]) if "face_bbx_list" in mat else None
    _same_length(path, "event_list", len(events), [("file_list", files), ("gt_list", gts), ("face_bbx_list", boxes)])
    listed = {}
    for i, event in enumerate(events):
        names = [_text(path, f"file_list of {event}", cell) for cell in _cells(path, f"file_list of {event}", files[i])]
        event_gts = _cells(path, f"gt_list of {event}", gts[i])
        event_boxes = _cells(path, f"face_bbx_list of {event}", boxes[i]) if boxes is not None else None
        _same_length(path, f"file_list of {event}", len(names),
                     [(f"gt_list of {event}", event_gts), (f"face_bbx_list of {event}", event_boxes)])
        for j, name in enumerate(names):
            rows = None if event_boxes is None else int(np.asarray(event_boxes[j]).reshape(-1, 4).shape[0])
            listed[f"{event}/{name}"] = (np.asarray(event_gts[j]).ravel(), rows)
    return listed


def _load_mat(path: Path) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError:
        raise WiderFaceError(f"{path}: a MATLAB v7.3 file, which this reader cannot open: save it with -v7") from None
    except Exception as exc:  # scipy raises several types for a damaged or foreign file
        raise WiderFaceError(f"{path}: not a readable MATLAB .mat file: {exc}") from None


def _cells(path: Path, what: str, value) -> list:
    array = np.asarray(value)
    if array.dtype != object:
        raise WiderFaceError(f"{path}: {what} is not a cell array")
    return list(array.ravel())


def _text(path: Path, what: str, value) -> str:
    array = np.asarray(value)
    while array.dtype == object and array.size == 1:
        array = np.asarray(array.ravel()[0])
    if array.dtype.kind not in "US" or array.size > 1:
        raise WiderFaceError(f"{path}: an entry of {what} is not a string")
    return str(array.ravel()[0]) if array.size else ""


def _same_length(path: Path, what: str, count: int, others: Iterable[tuple[str, list | None]]) -> None:
    for name, cells in others:
        if cells is not None and len(cells) != count:
            raise WiderFaceError(f"{path}: {what} has {count} entries but {name} has {len(cells)}")


def _zero_based(path: Path | str, key: str, indices: np.ndarray, face_count: int) -> np.ndarray:
    """The kit's 1-based face numbers as sorted, unique 0-based indices; every one must name a face."""
    values = np.asarray(indices, dtype=np.float64).ravel()
    bad = values[(values != np.round(values)) | (values < 1) | (values > face_count)]
    if bad.size:
        raise WiderFaceError(f"{path}: {key} has {face_count} faces, but its face list holds {bad[0]:g} "
                             f"(faces are numbered 1..{face_count})")
    return np.unique(values.astype(np.int64) - 1)


def write_split_mats(folder: str | Path, wider_set: WiderSet,
                     splits: Mapping[str, Mapping[str, Sequence[int]]]) -> list[Path]:
    """Write the kit's ground-truth files (all faces, and one per setting) so load_wider and the kit can read them.

    `splits` maps each of SPLITS to {image key or name: 1-based numbers of the faces that count};
    an image left out has no face that counts there.
    """
    if set(splits) != set(SPLITS):
        raise WiderFaceError(f"splits must be exactly {', '.join(SPLITS)}; got {', '.join(map(str, splits)) or 'none'}")
    gt_lists = {split: _split_numbers(wider_set, split, splits[split]) for split in SPLITS}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    common = _kit_cells(wider_set)
    written = [_save_mat(folder / ALL_FACES_FILE, common)]
    grouped = _by_event(wider_set)
    for split in SPLITS:
        gt_list = _cell([_cell([_column(gt_lists[split].get(image.key, []), np.float64) for image in grouped[event]])
                         for event in grouped])
        written.append(_save_mat(folder / SPLIT_FILES[split], {**common, "gt_list": gt_list}))
    return written


def _split_numbers(wider_set: WiderSet, split: str, listed: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    numbers: dict[str, list[int]] = {}
    for name, faces in listed.items():
        image = wider_set.image(name)
        if image.key in numbers:
            raise WiderFaceError(f"{split}: {image.key} is listed twice")
        keep = _zero_based(split, image.key, np.asarray(list(faces), dtype=np.float64), image.face_count)
        numbers[image.key] = [int(k) + 1 for k in keep]
    return numbers


def _by_event(wider_set: WiderSet) -> dict[str, list[WiderImage]]:
    grouped: dict[str, list[WiderImage]] = {event: [] for event in wider_set.events}
    for image in wider_set.images:
        grouped[image.event].append(image)
    return grouped


def _kit_cells(wider_set: WiderSet) -> dict[str, np.ndarray]:
    """event_list, file_list, face_bbx_list and the attribute label lists, as the kit's cell arrays."""
    grouped = _by_event(wider_set)

    def per_image(make) -> np.ndarray:
        return _cell([_cell([make(image) for image in grouped[event]]) for event in grouped])

    cells = {"event_list": _cell(list(grouped)), "file_list": per_image(lambda image: image.name),
             "face_bbx_list": per_image(_kit_box_rows)}
    for k, attribute in enumerate(ATTRIBUTES):
        cells[f"{attribute}_label_list"] = per_image(
            lambda image, k=k: _column(image.attributes[:, k] if image.face_count else [0], np.uint8))
    return cells


def _kit_box_rows(image: WiderImage) -> np.ndarray:
    """The image's x, y, w, h rows; a faceless image gets the kit's single all-zero row."""
    boxes = image.boxes if image.face_count else np.zeros((1, 4))
    return boxes.astype(np.int32) if np.all(boxes == np.round(boxes)) else boxes


def _column(values, dtype) -> np.ndarray:
    array = np.asarray(values, dtype=dtype).reshape(-1, 1)
    return array if array.size else np.zeros((0, 0), dtype=dtype)


def _cell(items: list) -> np.ndarray:
    """A MATLAB N×1 cell array."""
    cell = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        cell[i, 0] = item
    return cell


def _save_mat(path: Path, content: dict) -> Path:
    import scipy.io

    scipy.io.savemat(str(path), content, do_compression=True)
    return path


# ----------------------------------------------------------------------------- evaluation


def evaluate(wider_set: WiderSet, predictions: Mapping[str, np.ndarray],
             iou_threshold: float = IOU_THRESHOLD) -> WiderResult:
    """AP per setting of `predictions`: image key → M×5 x1, y1, x2, y2, score in pixels.

    An image without an entry found nothing: its faces count as missed.
    """
    if any(set(image.keep) != set(SPLITS) for image in wider_set.images):
        raise WiderFaceError(f"{wider_set.root}: the easy/medium/hard face lists are not loaded (use load_wider)")
    detections = _prepared(wider_set, predictions)
    totals = {split: np.zeros((THRESHOLD_COUNT, 2)) for split in SPLITS}
    for image in wider_set.images:
        found = detections.get(image.key)
        if found is None or not len(found):
            continue
        best_iou, best_face = _best_faces(found[:, :4], _kit_boxes(image))
        for split in SPLITS:
            kept, recalled = _match(best_iou, best_face, image, split, iou_threshold)
            totals[split] += _image_counts(found[:, 4], kept, recalled)
    faces = {split: wider_set.faces(split) for split in SPLITS}
    curves = {split: _curve(totals[split], faces[split]) for split in SPLITS}
    return WiderResult(ap={split: voc_ap(curves[split][:, 2], curves[split][:, 1]) for split in SPLITS},
                       images=len(wider_set.images), faces=faces,
                       detections=sum(len(found) for found in detections.values()),
                       iou_threshold=iou_threshold, curves=curves)


def evaluate_detector(dataset_dir: str | Path | WiderSet, detect: Callable[[np.ndarray], list],
                      progress: Callable[[int, int], None] | None = None) -> WiderResult:
    """Run `detect` (BGR image → objects with .box x1, y1, x2, y2 and .score) on every val image, then evaluate."""
    wider_set = dataset_dir if isinstance(dataset_dir, WiderSet) else load_wider(dataset_dir)
    if not wider_set.images_dir.is_dir():
        raise WiderFaceError(f"{wider_set.images_dir}: the WIDER FACE val images are missing (from WIDER_val.zip)")
    predictions = {}
    for done, image in enumerate(wider_set.images, 1):
        predictions[image.key] = _faces_array(detect(read_image(image.path, WiderFaceError)), image)
        if progress is not None:
            progress(done, len(wider_set.images))
    return evaluate(wider_set, predictions)


def _faces_array(faces: list, image: WiderImage) -> np.ndarray:
    try:
        rows = [[*(float(v) for v in face.box), float(face.score)] for face in faces]
    except (AttributeError, TypeError, ValueError):
        raise WiderFaceError(f"{image.path}: the detector returned {faces!r:.80}; expected objects with "
                             ".box (x1, y1, x2, y2) and .score") from None
    return _checked_rows(rows, image.key)


def _prepared(wider_set: WiderSet, predictions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Checked predictions by image key, best first (the kit's read_pred), scores normalized."""
    prepared: dict[str, np.ndarray] = {}
    for name, rows in predictions.items():
        image = wider_set.image(name)
        if image.key in prepared:
            raise WiderFaceError(f"predictions name {image.key} twice (as {name!r} and another key)")
        array = _checked_rows(rows, name)
        prepared[image.key] = array[np.argsort(-array[:, 4], kind="stable")]
    _normalize_scores(prepared)
    return prepared


def _checked_rows(rows, name: str) -> np.ndarray:
    array = np.asarray(rows, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 5)
    if array.ndim != 2 or array.shape[1] != 5:
        raise WiderFaceError(f"predictions for {name}: expected M×5 rows (x1, y1, x2, y2, score), "
                             f"got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise WiderFaceError(f"predictions for {name}: hold a value that is not a finite number")
    return array


def _normalize_scores(prepared: dict[str, np.ndarray]) -> None:
    """The kit's norm_score: (s - min) / (max - min) over all images, min and max kept in single precision.

    The kit starts max at realmin('single') and min at realmax('single'), which makes them (and
    so the normalized scores) single precision. Where every score is equal the kit divides 0 by 0
    and keeps nothing; here every detection then scores 1.
    """
    scores = [found[:, 4] for found in prepared.values() if len(found)]
    if not scores:
        return
    single = np.finfo(np.float32)
    top = np.float32(max(float(single.tiny), max(float(s.max()) for s in scores)))
    bottom = np.float32(min(float(single.max), min(float(s.min()) for s in scores)))
    for found in prepared.values():
        if top == bottom:
            found[:, 4] = 1.0
        else:
            found[:, 4] = (found[:, 4].astype(np.float32) - bottom) / (top - bottom)


def _kit_boxes(image: WiderImage) -> np.ndarray:
    """Faces as x1, y1, x2, y2 with the kit's x2 = x + w; a faceless image has the kit's one all-zero face."""
    boxes = image.boxes if image.face_count else np.zeros((1, 4))
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def kit_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A×B IoU of x1, y1, x2, y2 boxes in the kit's whole-pixel convention (a side spans x2 - x1 + 1)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = w * h
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (area_a[:, None] + area_b[None, :] - inter)
    iou[(w <= 0) | (h <= 0) | ~np.isfinite(iou)] = 0.0
    return iou


def _best_faces(found: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per detection: the IoU with the face it overlaps most, and that face (the first on ties, as MATLAB's max)."""
    iou = kit_iou(found, faces)
    best = np.argmax(iou, axis=1)
    return iou[np.arange(len(found)), best], best


def _match(best_iou: np.ndarray, best_face: np.ndarray, image: WiderImage, split: str,
           iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The kit's image_evaluation: which detections stay proposals, and faces found so far after each."""
    counts = np.zeros(max(image.face_count, 1), dtype=bool)
    counts[image.keep[split]] = True
    matched = best_iou >= iou_threshold
    kept = ~(matched & ~counts[best_face])  # a detection on an ignored face is dropped
    hits = np.flatnonzero(matched & counts[best_face])
    _, first = np.unique(best_face[hits], return_index=True)  # only a face's first hit finds it
    found_new = np.zeros(len(best_iou), dtype=np.int64)
    found_new[hits[first]] = 1
    return kept, np.cumsum(found_new)


def _image_counts(scores: np.ndarray, kept: np.ndarray, recalled: np.ndarray) -> np.ndarray:
    """The kit's image_pr_info: per threshold, proposals and faces found among detections scoring >= it."""
    passing = np.searchsorted(-scores, -THRESHOLDS, side="right")  # scores are sorted best first
    proposals = np.concatenate([[0], np.cumsum(kept)])
    found = np.concatenate([[0], recalled])
    return np.stack([proposals[passing], found[passing]], axis=1).astype(np.float64)


def _curve(totals: np.ndarray, faces: int) -> np.ndarray:
    """The kit's dataset_pr_info: T×3 threshold, precision (nan with no proposal), recall."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = totals[:, 1] / totals[:, 0]
        recall = totals[:, 1] / faces if faces else np.full(len(totals), np.nan)
    return np.stack([THRESHOLDS, precision, recall], axis=1)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """The kit's VOCap: area under the precision envelope; nan precisions are skipped, as MATLAB's max does."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.fmax.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


__all__ = [
    "ALL_FACES_FILE",
    "ATTRIBUTES",
    "GT_COLUMNS",
    "IOU_THRESHOLD",
    "SPLITS",
    "SPLIT_FILES",
    "THRESHOLDS",
    "WiderFaceError",
    "WiderImage",
    "WiderResult",
    "WiderSet",
    "evaluate",
    "evaluate_detector",
    "kit_iou",
    "load_wider",
    "load_wider_text",
    "read_gt_text",
    "voc_ap",
]
