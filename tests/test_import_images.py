"""morphocluster.images on real files of every kind the importers accept."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from morphocluster.images import ImageError, check_image_bytes, image_size, is_image_name, load_image


def test_real_formats_load_as_grey_and_rgb(shared_data):
    files = [
        next((shared_data / "planktonset-dev" / "copepod_calanoid").glob("*.jpg")),  # RGB JPEG, grey content
        next((shared_data / "ifcb-sample" / "training_data").rglob("*.png")),  # L PNG
        shared_data / "zooscan-unlabelled" / "vault" / "85457" / "0010.png",  # L PNG with scale bar
        shared_data / "ecotaxa-samples" / "ref_exports" / "doi" / "images" / "detritus" / "11_0.png",  # palette
    ]
    for f in files:
        w, h = image_size(f)
        grey = load_image(f)
        rgb = load_image(f, "RGB")
        assert grey.shape == (h, w) and grey.dtype == np.uint8
        assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
        assert check_image_bytes(f.read_bytes(), f.name) == (w, h)
        assert grey.std() > 0  # real content, not a blank


def test_alpha_is_composited_on_white_and_16bit_scaled(tmp_path, shared_data):
    src = shared_data / "zooscan-unlabelled" / "vault" / "85457" / "0010.png"
    grey = load_image(src)
    rgba = Image.open(src).convert("RGBA")
    alpha = np.zeros(grey.shape, np.uint8)
    alpha[:, : grey.shape[1] // 2] = 255
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert (out[:, grey.shape[1] // 2:] == 255).all()
    assert np.array_equal(out[:, : grey.shape[1] // 2], grey[:, : grey.shape[1] // 2])
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "b16.png")
    assert Image.open(tmp_path / "b16.png").mode.startswith("I")
    assert np.abs(load_image(tmp_path / "b16.png").astype(int) - grey).max() <= 1


def test_errors_name_the_file(tmp_path, shared_data):
    src = next((shared_data / "planktonset-dev" / "copepod_calanoid").glob("*.jpg"))
    bad = tmp_path / "half.jpg"
    bad.write_bytes(src.read_bytes()[:200])
    with pytest.raises(ImageError, match="half.jpg: corrupt image"):
        check_image_bytes(bad.read_bytes(), "half.jpg")
    with pytest.raises(ImageError, match="half.jpg"):
        load_image(bad)
    with pytest.raises(ImageError, match="gone.png: image file not found"):
        load_image(tmp_path / "gone.png")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(ImageError, match="text.jpg: not an image"):
        image_size(tmp_path / "text.jpg")
    with pytest.raises(ImageError, match="x.png: empty file"):
        check_image_bytes(b"", "x.png")
    assert is_image_name("A.TIFF") and is_image_name("b.gif") and not is_image_name("c.tsv")
