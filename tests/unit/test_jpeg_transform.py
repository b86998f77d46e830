"""jpeg_transform: libjpeg-turbo's lossless crop through ctypes (which releases the GIL), found
in the turbojpeg wheel or the system, run in one thread per process (a fork starts its own); a
file the library refuses is an OSError."""

import ctypes
import importlib.metadata
import io
import os
import signal

import pytest
from PIL import Image

from flux_api.imaging import jpeg_transform


def jpeg(size=(1024, 1024)) -> bytes:
    image = Image.effect_noise(size, 50).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=87)
    return out.getvalue()


def wheel_installed() -> bool:
    try:
        importlib.metadata.distribution("turbojpeg")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_library = pytest.mark.skipif(not jpeg_transform.available, reason="no libturbojpeg 3")


@pytest.mark.skipif(not wheel_installed(), reason="no turbojpeg wheel for this platform")
def test_the_wheels_library_is_found_first():
    assert jpeg_transform.available
    assert "turbojpeg" in jpeg_transform._candidates()[0]


@needs_library
def test_the_call_releases_the_gil():
    assert type(jpeg_transform._lib) is ctypes.CDLL  # a PyDLL would hold it


@needs_library
def test_a_crop_is_the_box_with_the_originals_tables():
    original = jpeg()
    cropped = jpeg_transform.crop(original, 0, 224, 1024, 576)
    with Image.open(io.BytesIO(cropped)) as image, Image.open(io.BytesIO(original)) as source:
        assert image.size == (1024, 576)
        assert image.quantization == source.quantization


@needs_library
def test_the_same_bytes_as_the_wheels_binding():
    turbojpeg = pytest.importorskip("turbojpeg")
    original = jpeg()
    expected = turbojpeg.transform(original, x=224, y=0, w=576, h=1024, crop=True)
    assert jpeg_transform.crop(original, 224, 0, 576, 1024) == expected


@needs_library
@pytest.mark.parametrize("data", [b"", b"not a jpeg", jpeg()[:-5000]])
def test_a_file_the_library_refuses_is_an_oserror(data):
    with pytest.raises(OSError):
        jpeg_transform.crop(data, 0, 0, 16, 16)


@needs_library
def test_a_bytearray_is_accepted():
    assert jpeg_transform.crop(bytearray(jpeg()), 0, 0, 16, 16)


def test_without_the_library_a_crop_is_an_oserror(monkeypatch):
    monkeypatch.setattr(jpeg_transform, "_lib", None)
    with pytest.raises(OSError):
        jpeg_transform.crop(jpeg(), 0, 0, 16, 16)


@needs_library
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_process_crops_in_a_thread_of_its_own():
    original = jpeg((256, 256))
    jpeg_transform.crop(original, 0, 0, 16, 16)  # the parent's crop thread is running
    pid = os.fork()
    if pid == 0:  # gunicorn's workers are forks: the parent's thread is not there
        signal.alarm(10)  # a crop waiting for that thread would hang
        ok = jpeg_transform.crop(original, 0, 16, 64, 64) == jpeg_transform._crop(
            original, 0, 16, 64, 64
        )
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
