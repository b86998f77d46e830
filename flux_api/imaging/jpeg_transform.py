"""libjpeg-turbo's lossless crop (tj3Transform), called through ctypes in one thread per process.

The library is the one the `turbojpeg` wheel bundles (requirements.txt), else a system
libturbojpeg 3. The wheel's own binding holds the GIL for the whole call (~3 ms per 16:9 crop),
stopping every other thread of the worker; a ctypes call releases it while in C.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import os
import platform
from concurrent.futures import ThreadPoolExecutor

_INIT_TRANSFORM = 2  # TJINIT_TRANSFORM
_XOPT_PERFECT = 1  # fail rather than drop the partial MCUs at the image's right or bottom edge
_XOPT_CROP = 4


class _Region(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in ("x", "y", "w", "h")]


class _Transform(ctypes.Structure):  # tjtransform
    _fields_ = [
        ("r", _Region),
        ("op", ctypes.c_int),
        ("options", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("customFilter", ctypes.c_void_p),
    ]


def _candidates() -> list[str]:
    """The wheel's copy first (auditwheel and delocate rename it, so it is found through the
    wheel's file list), then whatever the system linker would find."""
    paths = []
    try:
        for file in importlib.metadata.files("turbojpeg") or []:
            name = file.name.lower()
            if "turbojpeg" in name and (name.startswith("lib") or name.endswith(".dll")):
                paths.append(str(file.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    system = ctypes.util.find_library("turbojpeg")
    return paths + ([system] if system else [])


def _load() -> ctypes.CDLL | None:
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            _ = lib.tj3Transform  # the TurboJPEG 3 API (libjpeg-turbo 3.0 and later)
        except (OSError, AttributeError):
            continue
        lib.tj3Init.argtypes = [ctypes.c_int]
        lib.tj3Init.restype = ctypes.c_void_p
        lib.tj3Destroy.argtypes = [ctypes.c_void_p]
        lib.tj3Destroy.restype = None
        lib.tj3Free.argtypes = [ctypes.c_void_p]
        lib.tj3Free.restype = None
        lib.tj3GetErrorStr.argtypes = [ctypes.c_void_p]
        lib.tj3GetErrorStr.restype = ctypes.c_char_p
        lib.tj3Transform.argtypes = [
            ctypes.c_void_p,  # handle
            ctypes.c_char_p,  # jpegBuf: bytes are passed without a copy
            ctypes.c_size_t,
            ctypes.c_int,  # n transforms
            ctypes.POINTER(ctypes.c_void_p),  # dstBufs, allocated by the library
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(_Transform),
        ]
        lib.tj3Transform.restype = ctypes.c_int
        return lib
    return None


_lib = _load()
available = _lib is not None


def _keep_freed_pages() -> None:
    """A crop mallocs ~4.8 MB (the whole source's DCT coefficients, 3 MB at 1024x1024, and a
    worst-case output buffer) and frees it. By default glibc hands that back to the kernel after
    every crop, which then costs ~1,100 fresh page faults (~1.4 ms of CPU) the next time. Blocks
    up to 4 MiB now come from the heap, which keeps up to 8 MiB free at its top."""
    if _lib is not None and platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 8 << 20)  # M_TRIM_THRESHOLD


_keep_freed_pages()

# Every crop runs in this one thread, so what the heap keeps is one malloc arena's ~5 MB; from the
# request threads, whose arenas are up to 16 per process, it was 160 MiB per worker against 89.
# The executor starts its thread on the first crop, in the worker (gunicorn forks after import).
_executor = ThreadPoolExecutor(1, thread_name_prefix="jpeg-crop")


def _new_executor() -> None:  # a fork has no thread but the one that forked
    global _executor
    _executor = ThreadPoolExecutor(1, thread_name_prefix="jpeg-crop")


os.register_at_fork(after_in_child=_new_executor)


def crop(jpeg: bytes, x: int, y: int, w: int, h: int) -> bytes:
    """`jpeg` cut to the w x h box at (x, y), which must start on an MCU boundary; no pixel is
    decoded. OSError when the library is missing or refuses the file (warnings included)."""
    if _lib is None:
        raise OSError("no libturbojpeg 3 found")
    return _executor.submit(_crop, bytes(jpeg), x, y, w, h).result()


def _crop(jpeg: bytes, x: int, y: int, w: int, h: int) -> bytes:
    lib = _lib
    if lib is None:  # checked by crop already
        raise OSError("no libturbojpeg 3 found")
    # A handle per call: tj3Init costs microseconds, and a handle must not be shared by threads.
    handle = lib.tj3Init(_INIT_TRANSFORM)
    if not handle:
        raise OSError("tj3Init failed")
    transform = _Transform(_Region(x, y, w, h), 0, _XOPT_PERFECT | _XOPT_CROP, None, None)
    out = ctypes.c_void_p()
    size = ctypes.c_size_t()
    status = lib.tj3Transform(handle, jpeg, len(jpeg), 1, out, size, transform)
    try:
        if status != 0:
            raise OSError(lib.tj3GetErrorStr(handle).decode(errors="replace"))
        return ctypes.string_at(out, size.value)
    finally:
        lib.tj3Free(out)
        lib.tj3Destroy(handle)
