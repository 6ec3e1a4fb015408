//! A minimal PNG encoder for the simulated output images: an indexed-colour image (2 bits per
//! pixel, up to 4 palette entries), its pixel rows in a zlib stream of stored (uncompressed)
//! deflate blocks, CRC-32 and Adler-32 computed here. Small images only (tens of KiB), so
//! skipping compression costs nothing that matters and needs no dependency.

/// PNG's eight-byte signature.
pub const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Bits per pixel of the encoded image.
const BIT_DEPTH: u8 = 2;
/// Largest payload of one stored deflate block.
const STORED_BLOCK: usize = 65_535;

/// Encodes a `width` x `height` image whose pixels (row by row) index into `palette`.
/// Panics (a programming error, not input) if the sizes disagree or an index is over 3.
pub fn encode_indexed(width: u32, height: u32, palette: &[[u8; 3]], pixels: &[u8]) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    assert_eq!(pixels.len(), w * h, "pixel count");
    assert!(
        !palette.is_empty() && palette.len() <= 1 << BIT_DEPTH,
        "palette size"
    );
    let row_bytes = (w * BIT_DEPTH as usize).div_ceil(8);
    let mut raw = Vec::with_capacity(h * (row_bytes + 1));
    for row in pixels.chunks(w) {
        raw.push(0); // filter type: None
        for four in row.chunks(4) {
            let mut byte = 0u8;
            for (i, &index) in four.iter().enumerate() {
                assert!((index as usize) < palette.len(), "palette index {index}");
                byte |= index << (6 - 2 * i);
            }
            raw.push(byte);
        }
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // Bit depth, colour type 3 (indexed), compression, filter, interlace: all 0.
    ihdr.extend_from_slice(&[BIT_DEPTH, 3, 0, 0, 0]);
    let plte: Vec<u8> = palette.iter().flatten().copied().collect();

    let mut out = SIGNATURE.to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"PLTE", &plte);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let len = u32::try_from(data.len()).expect("a chunk of these small images fits in u32");
    out.extend_from_slice(&len.to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951 section 3.2.4).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let blocks = data.len().div_ceil(STORED_BLOCK).max(1);
    let mut out = Vec::with_capacity(data.len() + 5 * blocks + 6);
    out.extend_from_slice(&[0x78, 0x01]); // deflate, 32 KiB window, no dictionary; 0x7801 % 31 == 0
    let mut pieces = data.chunks(STORED_BLOCK).peekable();
    if pieces.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xFF, 0xFF]);
    }
    while let Some(piece) = pieces.next() {
        out.push(u8::from(pieces.peek().is_none())); // BFINAL on the last, BTYPE 00
        let len = piece.len() as u16; // chunks() keeps it at most STORED_BLOCK
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// The CRC-32 (IEEE, reflected) of PNG chunks.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut n = 0;
        while n < 256 {
            let mut c = n as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[n] = c;
            n += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8)
    })
}

fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that can be summed before `b` could overflow u32.
    for block in bytes.chunks(5552) {
        for &byte in block {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(&[]), 1);
    }

    #[test]
    fn a_two_by_two_image_has_every_chunk_with_valid_crcs() {
        let png = encode_indexed(2, 2, &[[0, 0, 0], [255, 255, 255]], &[0, 1, 1, 0]);
        assert_eq!(png[..8], SIGNATURE);
        let mut at = 8;
        let mut kinds = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let body = &png[at + 4..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc32(body), crc);
            kinds.push(String::from_utf8(body[..4].to_vec()).unwrap());
            at += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "PLTE", "IDAT", "IEND"]);
        // IHDR: 2x2, depth 2, indexed.
        assert_eq!(png[16..29], [0, 0, 0, 2, 0, 0, 0, 2, 2, 3, 0, 0, 0]);
    }

    #[test]
    fn stored_blocks_split_at_64_kib_and_keep_every_byte() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let z = zlib_stored(&data);
        assert_eq!(z[..2], [0x78, 0x01]);
        assert_eq!(z[2], 0, "the first block is not final");
        assert_eq!(z[3..5], 65_535u16.to_le_bytes());
        let second = 2 + 5 + 65_535;
        assert_eq!(z[second], 1, "the last block is final");
        assert_eq!(z[second + 1..second + 3], 4_465u16.to_le_bytes());
        assert_eq!(z.len(), 2 + 5 + 65_535 + 5 + 4_465 + 4);
        assert_eq!(z[z.len() - 4..], adler32(&data).to_be_bytes());
    }
}
