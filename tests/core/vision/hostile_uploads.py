"""The hostile-input corpus, upload half: file names and zip archives (see hostile_corpus.py).

An upload case says which display names uploads.iter_upload plus decoding must accept and
which (display name, reason) it must reject; the name is display text only, never a path.
"""

from __future__ import annotations

import io
import stat
import struct
import warnings
import zipfile
import zlib
from collections.abc import Sequence

from core.quality.uploads import display_name
from tests.core.vision.fuzz_seeds import seeds
from tests.core.vision.hostile_corpus import NOT_ALLOWED, Case, png_of

ZIP = "lot.zip"  # what every archive below is uploaded as
DAMAGED = r"damaged zip archive"
REFUSED = r"archive refused: "


def upload(
    label: str,
    name: str,
    data: bytes,
    accepted: Sequence[str] = (),
    rejected: Sequence[tuple[str, str]] = (),
    *,
    ingest: bool = False,
) -> Case:
    """An upload-shaped case; the bytes themselves decode only when they are one image."""
    image = bool(accepted) and accepted[0] == display_name(name) and not data.startswith(b"PK")
    return Case(
        "zip" if data.startswith(b"PK") or name == ZIP else "name",
        label,
        data,
        "ok" if image else "rejected",
        name=name,
        reason="" if image else NOT_ALLOWED + r"|file is empty|exceeds",
        accepted=tuple(accepted),
        rejected=tuple(rejected),
        ingest=ingest,
    )


def hostile_names() -> list[Case]:
    """A good PNG (and some bad files) under names that try paths, controls and spoofing."""
    png = seeds()["png_rgb"]
    text = b"not an image at all\n"
    long = "x" * 300 + ".png"
    named = [
        ("dotdot", "../../etc/passwd.png", "../../etc/passwd.png"),
        ("backslash_dotdot", "..\\..\\Windows\\x.png", "..\\..\\Windows\\x.png"),
        ("absolute", "/etc/shadow.png", "/etc/shadow.png"),
        ("drive", "C:\\Users\\x.png", "C:\\Users\\x.png"),
        ("nul", "a\x00b.png", "a?b.png"),
        ("newlines", "new\nline\r.png", "new?line?.png"),
        ("ansi_escape", "\x1b[31mred\x1b[0m.png", "?[31mred?[0m.png"),
        ("bell_delete", "bell\x07\x7f.png", "bell??.png"),
        ("rtl_override", "\u202egnp.exe", "?gnp.exe"),
        ("rtl_inside", "invoice\u202egpj.png", "invoice?gpj.png"),
        ("rtl_mark", "\u200fpart.png", "?part.png"),
        ("zero_width", "\u200bzero\u200dwidth.png", "?zero?width.png"),
        ("bom", "\ufeffbom.png", "?bom.png"),
        ("lone_surrogate", "\udc80part.png", "?part.png"),
        ("300_chars", long, "x" * 254 + "…"),
        ("300_accented", "é" * 300, "é" * 254 + "…"),
        ("1000_chars", "y" * 1000, "y" * 254 + "…"),
        ("blank", "   ", "(unnamed)"),
        ("empty", "", "(unnamed)"),
        ("only_controls", "\t\n", "??"),
        ("unicode", "部品-検査.png", "部品-検査.png"),
        ("emoji", "🙂.png", "🙂.png"),
        ("png_named_zip", "photo.zip", "photo.zip"),
    ]
    cases = [upload(label, name, png, [shown], ingest=True) for label, name, shown in named]
    bomb = png_of(20000, 20000, b"")
    cases += [
        upload("text_rtl_dotdot", "\u202e../../x.png", text, (), [("?../../x.png", r"HTML/text")]),
        upload("bomb_300_chars", long, bomb, (), [("x" * 254 + "…", r"400 Mpx exceeds")]),
        upload("text_named_zip", "notes.zip", text, (), [("notes.zip", r"HTML/text")]),
        upload("zero_bytes_named_zip", "empty.zip", b"", (), [("empty.zip", r"file is empty")]),
    ]
    return cases


def zip_of(*entries: tuple[str | zipfile.ZipInfo, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of (name or ZipInfo, bytes) entries, duplicates and all."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names; they are the point
        with zipfile.ZipFile(buf, "w", compression=method) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return buf.getvalue()


def raw_zip(*entries: tuple[bytes, bytes]) -> bytes:
    """A stored zip built byte by byte, for names zipfile will not write (an empty one)."""
    local, central = bytearray(), bytearray()
    for name, data in entries:
        size = len(data)
        crc = zlib.crc32(data)
        fields = struct.pack("<HHHHHIIIHH", 20, 0, 0, 0, 0, crc, size, size, len(name), 0)
        tail = struct.pack("<HHHII", 0, 0, 0, 0, len(local))
        central += b"PK\x01\x02" + struct.pack("<H", 20) + fields + tail + name
        local += b"PK\x03\x04" + fields + name + data
    n = len(entries)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, len(central), len(local), 0)
    return bytes(local + central + end)


def _central(data: bytearray, index: int) -> int:
    """Offset of the index-th central directory header."""
    at = -1
    for _ in range(index + 1):
        at = data.index(b"PK\x01\x02", at + 1)
    return at


def _patched(data: bytes, index: int, field: int, fmt: str, value: int, local=False) -> bytes:
    """Set a field of the index-th central directory header (and of its local header)."""
    out = bytearray(data)
    at = _central(out, index)
    if local:
        (offset,) = struct.unpack_from("<I", out, at + 42)
        struct.pack_into(fmt, out, offset + field - 2, value)  # no "version made by" there
    struct.pack_into(fmt, out, at + field, value)
    return bytes(out)


def _mode(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def _corrupt(data: bytes, index: int, at: int) -> bytes:
    """Flip the byte at offset at of the index-th entry's compressed data."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.infolist()[index]
    name_len, extra_len = struct.unpack_from("<HH", out, info.header_offset + 26)
    out[info.header_offset + 30 + name_len + extra_len + at] ^= 0xFF
    return bytes(out)


def _cd_offset_lies(data: bytes) -> bytes:
    """The end record puts the central directory 1,000 bytes later than it is: zipfile takes
    the difference for data prepended to the archive, so the first entry lies before byte 0."""
    out = bytearray(data)
    (offset,) = struct.unpack_from("<I", out, len(out) - 6)
    struct.pack_into("<I", out, len(out) - 6, offset + 1000)
    return bytes(out)


def _in_zip(
    label: str,
    data: bytes,
    ok: Sequence[str] = (),
    bad: Sequence[tuple[str, str]] = (),
    *,
    ingest: bool = False,
) -> Case:
    """An archive uploaded as lot.zip: the entries taken and refused, named inside it (a
    refusal named "" is of the archive itself)."""
    accepted = tuple(f"{ZIP}/{name}" for name in ok)
    rejected = tuple((f"{ZIP}/{name}" if name else ZIP, reason) for name, reason in bad)
    return upload(label, ZIP, data, accepted, rejected, ingest=ingest)


def _refused(label: str, data: bytes, reason: str, *, ingest: bool = False) -> Case:
    """An archive refused whole: nothing is taken from it."""
    return _in_zip(label, data, (), [("", reason)], ingest=ingest)


def archives() -> list[Case]:
    """Zips that overlap, nest, lie, repeat, escape, link, lock, bomb or are not zips at all."""
    s = seeds()
    a, b, jpg = s["png_rgb"], s["png_gray"], s["jpeg_rgb"]
    good = zip_of(("a.png", a), ("sub/b.png", b))
    both = ("a.png", "sub/b.png")
    bomb = png_of(20000, 20000, b"")
    mixed = zip_of(("a.png", a), ("notes.txt", b"hi\n"), ("empty.png", b""), ("bomb.png", bomb))
    mixed_bad = [("notes.txt", r"HTML/text"), ("empty.png", r"empty"), ("bomb.png", r"exceeds")]
    inner = zip_of(("b.png", b))
    with_comment = bytearray(zip_of(("a.png", a)))
    with_comment[-2:] = struct.pack("<H", 65535)  # the end record announces a 65,535-byte comment
    symlink = zip_of(("a.png", a), (_mode("l.png", stat.S_IFLNK | 0o777), b"/etc/passwd"))
    fifo = zip_of((_mode("f.png", stat.S_IFIFO | 0o644), a))
    bzip2 = zip_of(("a.png", a), ("b.png", b), method=zipfile.ZIP_BZIP2)
    lzma = zip_of(("a.png", a), ("b.png", b), method=zipfile.ZIP_LZMA)
    encrypted = _patched(_patched(good, 1, 8, "<H", 1, local=True), 1, 8, "<H", 1)
    long = "x" * 300 + ".png"
    hostile = zip_of(("\u202egnp.exe", a), ("a\x1b[2J.png", b), (long, jpg))
    many = zip_of(*[(f"p{i:03d}.png", a) for i in range(300)], method=zipfile.ZIP_STORED)
    return [
        _in_zip("good", good, both, ingest=True),
        _in_zip("mixed_bad_entries", mixed, ["a.png"], mixed_bad, ingest=True),
        _refused("empty_archive", b"PK\x05\x06" + bytes(18), r"holds no files"),
        _refused("zero_length", b"", r"file is empty"),
        upload("png_named_zip", ZIP, a, (ZIP,)),
        _refused("text_named_zip", b"PKZIP manual, chapter 1\n", r"HTML/text"),
        _refused("magic_then_garbage", b"PK\x03\x04garbage", DAMAGED),
        _refused("end_record_then_garbage", b"PK\x05\x06" + b"\xff" * 40, DAMAGED),
        _refused("spanned_marker", b"PK\x07\x08" + bytes(40), NOT_ALLOWED),
        _in_zip("nested_zip", zip_of(("a.png", a), ("in.zip", inner)), ["a.png"],
                [("in.zip", r"format ZIP is not allowed")], ingest=True),
        _in_zip("nested_three_deep", zip_of(("in.zip", zip_of(("in2.zip", inner)))), (),
                [("in.zip", r"format ZIP is not allowed")]),
        # b's directory entry points at a's local header, whose name is not b's.
        _in_zip("overlapping_entries", _patched(good, 1, 42, "<I", 0), ["a.png"],
                [("sub/b.png", r"damaged archive entry")], ingest=True),
        _in_zip("size_smaller_than_data", _patched(good, 0, 24, "<I", 9, local=True),
                ["sub/b.png"], [("a.png", r"Bad CRC-32")]),
        # Read to the end of its data and checked by CRC: a size too big costs nothing.
        _in_zip("size_bigger_than_data", _patched(good, 0, 24, "<I", 10 * len(a)), both),
        _in_zip("compressed_size_short", _patched(good, 0, 20, "<I", 20), ["sub/b.png"],
                [("a.png", r"Bad CRC-32")]),
        # zipfile goes by the central directory; the local header's sizes are not read.
        _in_zip("local_header_lies", _local_size(good), both),
        _in_zip("comment_65535", bytes(with_comment) + b"C" * 65535, ["a.png"]),
        _in_zip("comment_length_lies", bytes(with_comment), ["a.png"]),
        _refused("trailing_megabyte", good + bytes(1 << 20), DAMAGED),
        _refused("duplicate_names", zip_of(("a.png", a), ("a.png", b)), REFUSED + r".*twice",
                 ingest=True),
        _refused("duplicate_after_dot", zip_of(("x/a.png", a), ("x/./a.png", b)), r"appears twice"),
        _in_zip("names_differ_by_case", zip_of(("A.png", a), ("a.png", b)), ["A.png", "a.png"]),
        _refused("absolute_path", zip_of(("/etc/x.png", a)), r"absolute path"),
        _refused("drive_path", zip_of(("C:\\x.png", a)), r"absolute path"),
        _refused("unc_path", zip_of(("\\\\srv\\x.png", a)), r"absolute path"),
        _refused("dotdot", zip_of(("a.png", a), ("../../x.png", b)), r"outside the archive",
                 ingest=True),
        _refused("backslash_dotdot", zip_of(("a\\..\\..\\x.png", a)), r"outside the archive"),
        # zipfile cuts a name at its NUL when it reads the directory.
        _in_zip("nul_in_name", raw_zip((b"a\x00.png", a)), ["a"]),
        _refused("symlink", symlink, r"symbolic link", ingest=True),
        _refused("fifo", fifo, r"not a regular file"),
        _in_zip("encrypted_entry", encrypted, ["a.png"], [("sub/b.png", r"encrypted")],
                ingest=True),
        _in_zip("aes_method", _patched(good, 1, 10, "<H", 99, local=True), ["a.png"],
                [("sub/b.png", r"compression method is not supported")]),
        _refused("future_version", _patched(good, 1, 6, "<H", 990), DAMAGED),
        _in_zip("offset_past_end", _patched(good, 1, 42, "<I", 0xFFFFFF00), ["a.png"],
                [("sub/b.png", r"damaged archive entry")]),
        _refused("cd_offset_lies", _cd_offset_lies(good), DAMAGED, ingest=True),
        _in_zip("corrupt_deflate", _corrupt(good, 1, 0), ["a.png"],
                [("sub/b.png", r"damaged archive entry \(Error -3")]),
        _in_zip("corrupt_crc", _corrupt(good, 1, 2), ["a.png"], [("sub/b.png", r"Bad CRC-32")]),
        _in_zip("corrupt_bzip2", _corrupt(bzip2, 1, 4), ["a.png"],
                [("b.png", r"damaged archive entry \(Invalid data")]),
        # A corrupt LZMA entry ends the archive (it used to escape as LZMAError).
        _in_zip("corrupt_lzma", _corrupt(lzma, 1, 10), ["a.png"],
                [("", DAMAGED + r" \(Corrupt input")], ingest=True),
        _refused("ratio_bomb", zip_of(("zeros.png", bytes(2 << 20))), r"looks like a zip bomb"),
        _refused("declares_4gib", _patched(good, 0, 24, "<I", 0xFFFFFFFF), REFUSED),
        _refused("folders_only", zip_of(("a/", b""), ("a/b/", b"")), r"holds no files"),
        _refused("os_junk_only", zip_of(("__MACOSX/._a.png", b"x"), (".DS_Store", b"x")),
                 r"holds no files"),
        _in_zip("empty_entry_name", raw_zip((b"", a), (b"b.png", b)), ["b.png"]),
        _refused("two_empty_names", raw_zip((b"", a), (b"", b)), DAMAGED),
        _in_zip("hostile_entry_names", hostile,
                ["?gnp.exe", "a?[2J.png", ("x" * 300)[: 254 - len(ZIP) - 1] + "…"], ingest=True),
        upload("hostile_zip_name", "../\u202eevil\x00.zip", good,
               ("../?evil?.zip/a.png", "../?evil?.zip/sub/b.png")),
        _in_zip("zip64", _zip64(a), ["a.png"]),
        _in_zip("stored_300_entries", many, [f"p{i:03d}.png" for i in range(300)]),
    ]  # fmt: skip


def _local_size(data: bytes) -> bytes:
    """The first entry's local header claims 7 bytes; the directory (which zipfile reads) not."""
    out = bytearray(data)
    struct.pack_into("<I", out, 22, 7)  # the first local header is at offset 0
    return bytes(out)


def _zip64(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, zf.open("a.png", "w", force_zip64=True) as f:
        f.write(data)
    return buf.getvalue()
