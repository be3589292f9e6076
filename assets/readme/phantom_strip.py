"""Builds assets/readme/phantom-frames.png: the frames of one phantom clip, side by side at
half size. Standard library only (zlib); reads the 8-bit RGB PNGs that `medvqa phantom`
writes.

    medvqa phantom --set frames --seed 7 --out /tmp/phantoms
    python3 assets/readme/phantom_strip.py assets/readme/phantom-frames.png /tmp/phantoms/frames/0004_f*.png
"""

import struct
import sys
import zlib


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat = 8, b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (0, 2), "8-bit gray or RGB only"
        elif kind == b"IDAT":
            idat += body
    ch = 1 if colour == 0 else 3
    raw, stride = zlib.decompress(idat), w * ch
    out, prev, p = bytearray(), bytearray(stride), 0
    for _ in range(h):
        f, line = raw[p], bytearray(raw[p + 1 : p + 1 + stride])
        p += 1 + stride
        for x in range(stride):
            a = line[x - ch] if x >= ch else 0
            b = prev[x]
            c = prev[x - ch] if x >= ch else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pr) & 255
        out += line
        prev = line
    if ch == 1:
        out = bytearray(v for g in out for v in (g, g, g))
    return w, h, out


def half(w, h, px):
    hw, hh = w // 2, h // 2
    out = bytearray(hw * hh * 3)
    for y in range(hh):
        for x in range(hw):
            for k in range(3):
                s = sum(px[((2 * y + dy) * w + 2 * x + dx) * 3 + k] for dy in (0, 1) for dx in (0, 1))
                out[(y * hw + x) * 3 + k] = (s + 2) // 4
    return hw, hh, out


def paeth_rows(w, h, rgb):
    """Every row with the Paeth filter, which suits photographic content."""
    stride, out, prev = w * 3, bytearray(), bytes(w * 3)
    for y in range(h):
        line = rgb[y * stride : (y + 1) * stride]
        out.append(4)
        for x in range(stride):
            a = line[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out.append((line[x] - pr) & 255)
        prev = line
    return bytes(out)


def write_png(path, w, h, rgb):
    rows = paeth_rows(w, h, rgb)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)


def main():
    out, frames, gap = sys.argv[1], sys.argv[2:], 4
    small = [half(*read_png(f)) for f in frames]
    fw, fh = small[0][0], small[0][1]
    w = len(small) * fw + (len(small) - 1) * gap
    strip = bytearray([255] * (w * fh * 3))
    for i, (_, _, px) in enumerate(small):
        ox = i * (fw + gap)
        for y in range(fh):
            strip[(y * w + ox) * 3 : (y * w + ox + fw) * 3] = px[y * fw * 3 : (y + 1) * fw * 3]
    write_png(out, w, fh, strip)


if __name__ == "__main__":
    main()
