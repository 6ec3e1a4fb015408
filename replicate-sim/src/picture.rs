//! The picture behind a simulated output URL: a 320x400 PNG whose background colour comes from
//! the output hash and whose text is a label from the prediction's input (see
//! [`crate::output::output_label`]), the model's name and the hash. A pure function of
//! (hash, model key, label), so the same input always gives the same bytes.

use crate::font::{glyph, GLYPH_HEIGHT, GLYPH_WIDTH};
use crate::png::encode_indexed;

pub const WIDTH: u32 = 320;
pub const HEIGHT: u32 = 400;

/// Palette entries.
const BACKGROUND: u8 = 0;
const INK: u8 = 1;
const FRAME: u8 = 2;
const PANEL: u8 = 3;

/// Space between the frame and the text, in pixels.
const MARGIN: usize = 20;
const FRAME_WIDTH: usize = 8;
/// Most label lines drawn; a longer label ends with "...".
const MAX_LINES: usize = 6;

/// The PNG served for output `hash` of a prediction of `model_key` labelled `label`.
pub fn render(hash: &str, model_key: &str, label: &str) -> Vec<u8> {
    let mut canvas = Canvas::new(WIDTH as usize, HEIGHT as usize);
    let w = canvas.width;
    let h = canvas.height;
    canvas.fill(0, 0, w, h, FRAME);
    canvas.fill(
        FRAME_WIDTH,
        FRAME_WIDTH,
        w - FRAME_WIDTH,
        h - FRAME_WIDTH,
        BACKGROUND,
    );

    let scale = 3;
    let lines = wrap(label, canvas.columns(scale));
    let line_height = (GLYPH_HEIGHT + 4) * scale;
    let block = lines.len() * line_height;
    let top = (h - block) / 2 - 20;
    if !lines.is_empty() {
        canvas.fill(MARGIN - 8, top - 12, w - MARGIN + 8, top + block + 8, PANEL);
    }
    for (i, line) in lines.iter().enumerate() {
        canvas.text_centered(line, top + i * line_height, scale, INK);
    }

    let name = model_key.rsplit('/').next().unwrap_or(model_key);
    let small = 2;
    let mut name: String = name.chars().take(canvas.columns(small)).collect();
    if name.is_empty() {
        name = "replicate-sim".into();
    }
    canvas.text_centered(&name, MARGIN + FRAME_WIDTH, small, INK);
    let bottom = h - MARGIN - FRAME_WIDTH - GLYPH_HEIGHT * small;
    canvas.text_centered(&format!("#{hash}"), bottom, small, INK);

    encode_indexed(WIDTH, HEIGHT, &palette(hash), &canvas.pixels)
}

/// Background from the hash's first bytes (hue, and a little lightness), the frame darker,
/// the text panel lighter, the ink black or white, whichever reads better on the background.
fn palette(hash: &str) -> [[u8; 3]; 4] {
    let byte = |i: usize| {
        hash.get(2 * i..2 * i + 2)
            .and_then(|b| u8::from_str_radix(b, 16).ok())
            .unwrap_or(0)
    };
    let hue = f32::from(u16::from(byte(0)) << 8 | u16::from(byte(1))) / 65_536.0 * 360.0;
    let lightness = 0.45 + f32::from(byte(2)) / 255.0 * 0.2;
    let background = hsl(hue, 0.6, lightness);
    let frame = hsl(hue, 0.6, lightness - 0.2);
    let panel = hsl(hue, 0.6, lightness + 0.2);
    let luma =
        |[r, g, b]: [u8; 3]| 0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b);
    let ink = if luma(panel) > 140.0 {
        [16, 16, 16]
    } else {
        [250, 250, 250]
    };
    [background, ink, frame, panel]
}

fn hsl(hue: f32, saturation: f32, lightness: f32) -> [u8; 3] {
    let l = lightness.clamp(0.0, 1.0);
    let c = (1.0 - (2.0 * l - 1.0).abs()) * saturation;
    let x = c * (1.0 - ((hue / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (hue / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let channel = |v: f32| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    [channel(r), channel(g), channel(b)]
}

/// Greedy word wrap into lines of at most `columns` characters; words longer than a line are
/// split; past [`MAX_LINES`] the last line ends with "...".
fn wrap(text: &str, columns: usize) -> Vec<String> {
    if columns == 0 {
        return Vec::new();
    }
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = current.chars().count();
            let room = if used == 0 {
                columns
            } else {
                columns.saturating_sub(used + 1)
            };
            if word.len() <= room {
                if used > 0 {
                    current.push(' ');
                }
                current.extend(word);
                break;
            }
            if used == 0 {
                current.extend(word.drain(..columns));
            }
            lines.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() > MAX_LINES {
        lines.truncate(MAX_LINES);
        let last = &mut lines[MAX_LINES - 1];
        let keep = last.chars().count().min(columns.saturating_sub(3));
        *last = last.chars().take(keep).collect::<String>() + "...";
    }
    lines
}

/// Palette indices, row by row.
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![BACKGROUND; width * height],
        }
    }

    /// Characters that fit between the margins at `scale`.
    fn columns(&self, scale: usize) -> usize {
        (self.width - 2 * (MARGIN + FRAME_WIDTH)) / ((GLYPH_WIDTH + 1) * scale)
    }

    /// Fills `[x0, x1) x [y0, y1)`, clipped to the canvas.
    fn fill(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, colour: u8) {
        for y in y0..y1.min(self.height) {
            let row = y * self.width;
            self.pixels[row + x0.min(self.width)..row + x1.min(self.width)].fill(colour);
        }
    }

    fn text_centered(&mut self, text: &str, y: usize, scale: usize, colour: u8) {
        let advance = (GLYPH_WIDTH + 1) * scale;
        let width = (text.chars().count() * advance).saturating_sub(scale);
        let mut x = self.width.saturating_sub(width) / 2;
        for c in text.chars() {
            for (dy, bits) in glyph(c).iter().enumerate() {
                for dx in 0..GLYPH_WIDTH {
                    if bits & (1 << (GLYPH_WIDTH - 1 - dx)) != 0 {
                        let (px, py) = (x + dx * scale, y + dy * scale);
                        self.fill(px, py, px + scale, py + scale, colour);
                    }
                }
            }
            x += advance;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_words_splits_long_ones_and_caps_lines() {
        assert_eq!(wrap("blue oxford shirt", 12), ["blue oxford", "shirt"]);
        assert_eq!(wrap("  ", 12), Vec::<String>::new());
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("a abcdefghij", 4), ["a", "abcd", "efgh", "ij"]);
        let long = wrap(&"word ".repeat(40), 9);
        assert_eq!(long.len(), MAX_LINES);
        assert_eq!(long[MAX_LINES - 1], "word w...");
    }

    #[test]
    fn the_image_depends_on_hash_and_label_only() {
        let a = render("0123456789abcdef", "o/idm-vton", "blue oxford shirt");
        assert_eq!(
            a,
            render("0123456789abcdef", "o/idm-vton", "blue oxford shirt")
        );
        assert_ne!(
            a,
            render("fedcba9876543210", "o/idm-vton", "blue oxford shirt")
        );
        assert_ne!(a, render("0123456789abcdef", "o/idm-vton", "denim jacket"));
        assert_eq!(a[..8], crate::png::SIGNATURE);
        assert_eq!(a[16..20], WIDTH.to_be_bytes());
        assert_eq!(a[20..24], HEIGHT.to_be_bytes());
    }

    #[test]
    fn palettes_follow_the_hash_and_keep_ink_readable() {
        let (a, b) = (palette("00001234"), palette("80001234"));
        assert_ne!(a[0], b[0]);
        for p in [a, b, palette("ffffffff"), palette("")] {
            assert!(p[1] == [16, 16, 16] || p[1] == [250, 250, 250]);
            assert_ne!(p[0], p[2]);
            assert_ne!(p[0], p[3]);
        }
    }
}
