"""Tests of mel_tf.training.data: decoding, resizing, the built-in icons and deterministic batches."""

import logging
import os

import numpy as np
import pytest
from PIL import Image

from mel_tf.training import data

WHITE = (255, 255, 255)


def save(path, image, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, **kwargs)
    return path


def load_one(tmp_path, image, name="img.png", background=WHITE, **kwargs):
    """Saves one image in a fresh folder and loads it back as [S, S, 3]."""
    folder = tmp_path / "one"
    save(str(folder / name), image, **kwargs)
    image_set = data.load_folder(str(folder), background=background)
    assert len(image_set) == 1
    return image_set.sources[0]


# ---- decoding ------------------------------------------------------------------

def test_rgba_is_composited_on_the_background(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:, :2] = (10, 20, 30, 0)        # fully transparent: colour must not leak
    rgba[:, 2] = (250, 0, 0, 255)        # opaque
    rgba[:, 3] = (0, 0, 0, 128)          # half-transparent black
    bg = (200, 100, 50)
    out = load_one(tmp_path, Image.fromarray(rgba, "RGBA"), background=bg)
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    np.testing.assert_array_equal(out[:, :2], np.broadcast_to(bg, (4, 2, 3)))
    np.testing.assert_array_equal(out[:, 2], np.broadcast_to((250, 0, 0), (4, 3)))
    np.testing.assert_allclose(out[:, 3], np.broadcast_to(np.array(bg) * 127 / 255, (4, 3)),
                               atol=1)


def test_la_and_palette_transparency_are_composited(tmp_path):
    la = np.zeros((2, 2, 2), np.uint8)
    la[0] = (90, 0)
    la[1] = (90, 255)
    out = load_one(tmp_path, Image.fromarray(la, "LA"), background=(0, 255, 0))
    np.testing.assert_array_equal(out[0], [[0, 255, 0]] * 2)
    np.testing.assert_array_equal(out[1], [[90, 90, 90]] * 2)

    pal = Image.new("P", (2, 2))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 1, 1, 0])
    out = load_one(tmp_path / "p", pal, transparency=1, background=(7, 8, 9))
    np.testing.assert_array_equal(out.reshape(4, 3), [[255, 0, 0], [7, 8, 9], [7, 8, 9],
                                                     [255, 0, 0]])


def test_grayscale_palette_and_16_bit_are_converted(tmp_path):
    grey = Image.fromarray(np.array([[0, 77], [200, 255]], np.uint8), "L")
    out = load_one(tmp_path / "l", grey)
    np.testing.assert_array_equal(out[..., 0], [[0, 77], [200, 255]])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])

    pal = Image.new("P", (2, 2))
    pal.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    pal.putdata([0, 1, 1, 0])
    out = load_one(tmp_path / "p", pal)
    np.testing.assert_array_equal(out.reshape(4, 3), [[10, 20, 30], [40, 50, 60],
                                                     [40, 50, 60], [10, 20, 30]])

    # 16-bit: scaled by 255/65535, not clipped at 255.
    wide = np.array([[0, 128 * 257], [65535, 1000]], np.uint16)
    out = load_one(tmp_path / "i16", Image.fromarray(wide))
    np.testing.assert_array_equal(out[..., 1], [[0, 128], [255, 4]])
    # PIL's 32-bit "I" mode holding 16-bit values is treated the same way.
    as_i = Image.fromarray(wide.astype(np.int32), "I")
    np.testing.assert_array_equal(data.to_rgb(as_i)[..., 0], [[0, 128], [255, 4]])


def test_exif_orientation_is_honoured(tmp_path):
    # Stored 32 wide x 16 tall, red on top and blue below. Orientation 6 means
    # "rotate 90 degrees clockwise to display": 16 wide x 32 tall, red on the
    # right. Its centre square then is blue on the left, red on the right;
    # ignoring the tag would give red on top instead.
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:8] = (255, 0, 0)
    stored[8:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = load_one(tmp_path, Image.fromarray(stored), name="photo.jpg", exif=exif, quality=95)
    assert out.shape == (16, 16, 3)
    np.testing.assert_allclose(out[8, 2], (0, 0, 255), atol=40)    # left: blue
    np.testing.assert_allclose(out[8, 13], (255, 0, 0), atol=40)   # right: red


def test_non_square_is_centre_cropped(tmp_path):
    wide = np.zeros((4, 6, 3), np.uint8)
    wide[..., 0] = np.arange(6) * 40           # red = 40 * column
    out = load_one(tmp_path / "w", Image.fromarray(wide))
    np.testing.assert_array_equal(out[0, :, 0], [40, 80, 120, 160])   # columns 1..4

    tall = np.zeros((7, 3, 3), np.uint8)
    tall[..., 1] = np.arange(7)[:, None] * 30  # green = 30 * row
    out = load_one(tmp_path / "t", Image.fromarray(tall))
    np.testing.assert_array_equal(out[:, 0, 1], [60, 90, 120])        # rows 2..4


def test_gif_first_frame(tmp_path):
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    blue = Image.new("RGB", (4, 4), (0, 0, 255))
    out = load_one(tmp_path, red, name="anim.gif", save_all=True, append_images=[blue])
    np.testing.assert_array_equal(out, np.broadcast_to((255, 0, 0), (4, 4, 3)))


def test_folder_is_walked_recursively_by_extension(tmp_path):
    img = Image.new("RGB", (8, 8), (1, 2, 3))
    save(str(tmp_path / "a.PNG"), img)
    save(str(tmp_path / "sub" / "deeper" / "b.JpEg"), img)
    save(str(tmp_path / "sub" / "c.webp"), img, lossless=True)
    save(str(tmp_path / "sub" / "d.bmp"), img)
    (tmp_path / "notes.txt").write_text("not an image")
    image_set = data.load_folder(str(tmp_path))
    assert len(image_set) == 4 and image_set.report.num_skipped == 0
    assert all(src.shape == (8, 8, 3) for src in image_set.sources)


def test_corrupt_file_is_skipped_with_a_warning(tmp_path, caplog):
    save(str(tmp_path / "good.png"), Image.new("RGB", (4, 4)))
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    with caplog.at_level(logging.WARNING, logger="mel_tf.training.data"):
        image_set = data.load_folder(str(tmp_path))
    assert len(image_set) == 1
    assert image_set.report.num_skipped == 1
    assert image_set.report.skipped == ("broken.png",)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "broken.png" in warnings[0].getMessage()


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_folder(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"no usable image in {empty}"):
        data.load_folder(str(empty))
    (empty / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match="1 of them could not be decoded"):
        data.load_folder(str(empty))


# ---- resizing ------------------------------------------------------------------

def test_downscaling_averages(tmp_path):
    checker = np.zeros((8, 8, 3), np.uint8)
    checker[(np.arange(8)[:, None] + np.arange(8)) % 2 == 0] = 255
    save(str(tmp_path / "c.png"), Image.fromarray(checker))
    image_set = data.load_folder(str(tmp_path))
    np.testing.assert_array_equal(image_set.images(8)[0], checker)
    half = image_set.images(4)
    assert half.shape == (1, 4, 4, 3) and half.dtype == np.uint8
    assert np.all(np.abs(half.astype(float) - 127.5) <= 0.5)    # the mean, no aliasing
    assert image_set.images(4) is half                          # cached per resolution

    # Every stage is the block mean of the source (up to rounding).
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    image_set = data.ImageSet([src], data.LoadReport("random", 1))
    quarter = image_set.images(4)[0].astype(float)
    np.testing.assert_allclose(quarter, src.reshape(4, 4, 4, 4, 3).mean(axis=(1, 3)), atol=0.5)
    np.testing.assert_allclose(image_set.images(8)[0].astype(float),
                               src.reshape(8, 2, 8, 2, 3).mean(axis=(1, 3)), atol=0.5)


def test_load_time_max_size_and_resolution_limit(tmp_path):
    save(str(tmp_path / "big.png"), Image.new("RGB", (40, 32), (9, 9, 9)))
    image_set = data.open_dataset(data_dir=str(tmp_path), max_resolution=8)
    assert image_set.sources[0].shape == (8, 8, 3)
    assert image_set.images(4).shape == (1, 4, 4, 3)
    assert data.describe(image_set)["num_images"] == 1
    small = data.ImageSet([np.zeros((4, 4, 3), np.uint8)], data.LoadReport("s", 1),
                          max_resolution=8)
    assert small.images(8).shape == (1, 8, 8, 3)                # upscaled
    with pytest.raises(ValueError, match="above"):
        small.images(16)


def test_open_dataset_needs_exactly_one_source(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        data.open_dataset(max_resolution=8)
    with pytest.raises(ValueError, match="exactly one"):
        data.open_dataset(data_dir=str(tmp_path), dataset="twemoji_faces", max_resolution=8)
    with pytest.raises(ValueError, match="unknown dataset 'cats'"):
        data.open_dataset(dataset="cats", max_resolution=8)


# ---- the built-in dataset ------------------------------------------------------

def test_shipped_icon_list_matches_installed_assets():
    names = data.twemoji_face_names()
    assert len(names) == 969 and len(set(names)) == 969
    svg_dir = data.twemoji_svg_dir()
    assert all(os.path.isfile(os.path.join(svg_dir, f"{n}.svg")) for n in names)


def test_cache_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv(data.CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == str(tmp_path / "xdg" / "mel_tf")
    monkeypatch.setenv(data.CACHE_ENV_VAR, str(tmp_path / "mine"))
    assert data.default_cache_dir() == str(tmp_path / "mine")


def test_twemoji_faces_rasterised_and_cached(tmp_path, monkeypatch, caplog):
    bg = (0, 128, 255)
    names = ["1f600", "1f60d", "not-an-icon", "1f644"]
    with caplog.at_level(logging.WARNING, logger="mel_tf.training.data"):
        first = data.load_twemoji_faces(16, background=bg, cache_dir=str(tmp_path), names=names)
    assert any("not-an-icon" in r.getMessage() for r in caplog.records)
    assert first.report.skipped == ("not-an-icon",) and not first.report.from_cache
    faces = first.images(16)
    assert faces.shape == (3, 16, 16, 3) and faces.dtype == np.uint8
    cached = os.listdir(tmp_path / "twemoji_faces")
    assert len(cached) == 1 and cached[0].endswith(".npz")
    # A round face: transparent corners show the background, the middle does not.
    for face in faces:
        np.testing.assert_array_equal(face[0, 0], bg)
        assert np.mean(np.any(face != bg, axis=-1)) > 0.5

    def no_rendering(*args, **kwargs):
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr(data, "render_svg", no_rendering)
    second = data.load_twemoji_faces(16, background=bg, cache_dir=str(tmp_path), names=names)
    assert second.report.from_cache and second.report.skipped == ("not-an-icon",)
    np.testing.assert_array_equal(second.images(16), faces)
    assert second.images(8).shape == (3, 8, 8, 3)

    # open_dataset goes through the same cache (here with the same short list).
    monkeypatch.setattr(data, "twemoji_face_names", lambda: names)
    third = data.open_dataset(dataset="twemoji_faces", max_resolution=16, background=bg,
                              cache_dir=str(tmp_path))
    np.testing.assert_array_equal(third.images(16), faces)


# ---- deterministic batches -----------------------------------------------------

def test_batch_indices_cover_each_epoch_and_resume_exactly():
    n, b, seed = 10, 4, 3
    batches = [data.batch_indices(n, b, seed, s) for s in range(15)]     # 60 = 6 epochs
    stream = np.concatenate(batches)
    for e in range(6):
        epoch = stream[e * n:(e + 1) * n]
        np.testing.assert_array_equal(np.sort(epoch), np.arange(n))
        np.testing.assert_array_equal(epoch, np.random.default_rng([seed, e]).permutation(n))
    assert not np.array_equal(stream[:n], stream[n:2 * n])
    # Recomputing from a later step, in any order, gives the same batches.
    for s in (14, 7, 2):
        np.testing.assert_array_equal(data.batch_indices(n, b, seed, s), batches[s])
    assert not np.array_equal(data.batch_indices(n, b, seed + 1, 0), batches[0])


def test_batch_dataset_resumes_at_a_step():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 4, 4, 3), dtype=np.uint8)
    b, seed = 3, 11

    def extra(step):
        return {"z": np.full((b, 2), step, np.float32)}

    ds = data.batch_dataset(images, b, seed, start_step=5, extra_fn=extra)
    assert ds.element_spec["images"].shape == (b, 4, 4, 3)
    assert ds.element_spec["z"].shape == (b, 2)
    for step, element in zip(range(5, 9), ds):
        np.testing.assert_array_equal(element["steps"].numpy(), np.full((b,), step))
        np.testing.assert_array_equal(element["images"].numpy(),
                                      images[data.batch_indices(7, b, seed, step)])
        np.testing.assert_array_equal(element["z"].numpy(), np.full((b, 2), step))

    plain = next(iter(data.batch_dataset(images, b, seed, start_step=5)))
    assert set(plain) == {"images", "steps"}
    np.testing.assert_array_equal(plain["images"].numpy(),
                                  images[data.batch_indices(7, b, seed, 5)])


def test_fewer_images_than_a_batch(tmp_path):
    for i in range(3):
        save(str(tmp_path / f"{i}.png"), Image.new("RGB", (4, 4)))
    image_set = data.load_folder(str(tmp_path))
    with pytest.raises(ValueError, match=f"3 images in {tmp_path}, fewer than one batch of 8"):
        data.batch_dataset(image_set.images(4), 8, 0, source=image_set.report.source)
