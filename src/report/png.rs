//! RGB raster images: scatter plots of a 2-D layout, encoded as PNG (and base64 for the HTML).

/// Distinct colours (Tableau 10, then the lighter Tableau 20 tones) for up to 20 groups; more
/// groups cycle through golden-angle hues.
pub fn palette(k: usize) -> Vec<[u8; 3]> {
    const TAB20: [[u8; 3]; 20] = [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
        [174, 199, 232],
        [255, 187, 120],
        [152, 223, 138],
        [255, 152, 150],
        [197, 176, 213],
        [196, 156, 148],
        [247, 182, 210],
        [199, 199, 199],
        [219, 219, 141],
        [158, 218, 229],
    ];
    (0..k)
        .map(|i| {
            if i < 20 {
                TAB20[i]
            } else {
                hsv((i as f32 * 137.508) % 360.0, 0.65, 0.85)
            }
        })
        .collect()
}

fn hsv(h: f32, s: f32, v: f32) -> [u8; 3] {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [
        ((r + m) * 255.0) as u8,
        ((g + m) * 255.0) as u8,
        ((b + m) * 255.0) as u8,
    ]
}

/// A square scatter plot of `xy` (`n x 2`) coloured by `groups`, `size` pixels wide, on white.
/// Cells are drawn in a fixed pseudo-random order so no group is hidden under another.
pub fn scatter(xy: &[f32], groups: &[u32], colours: &[[u8; 3]], size: usize) -> Vec<u8> {
    let n = groups.len();
    let mut img = vec![255u8; size * size * 3];
    if n == 0 {
        return img;
    }
    let bounds = |c: usize| {
        let v = (0..n).map(|i| xy[i * 2 + c]);
        let lo = v.clone().fold(f32::INFINITY, f32::min);
        let hi = v.fold(f32::NEG_INFINITY, f32::max);
        (lo, if hi > lo { hi - lo } else { 1.0 })
    };
    let ((x0, xs), (y0, ys)) = (bounds(0), bounds(1));
    let span = xs.max(ys);
    let margin = 6.0;
    let scale = (size as f32 - 2.0 * margin) / span;
    let (cx, cy) = (
        (size as f32 - xs * scale) / 2.0,
        (size as f32 - ys * scale) / 2.0,
    );
    let radius: i64 = if n > 20_000 {
        1
    } else if n > 3_000 {
        2
    } else {
        3
    };
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = 0x853c_49e6_748f_ea9bu64;
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        order.swap(i, (state >> 33) as usize % (i + 1));
    }
    for &i in &order {
        let px = (cx + (xy[i * 2] - x0) * scale) as i64;
        // Image rows run downwards; y grows upwards.
        let py = size as i64 - 1 - (cy + (xy[i * 2 + 1] - y0) * scale) as i64;
        let c = colours[groups[i] as usize % colours.len()];
        for dy in -radius..=radius {
            for dx in -radius..=radius {
                if dx * dx + dy * dy > radius * radius {
                    continue;
                }
                let (x, y) = (px + dx, py + dy);
                if x >= 0 && y >= 0 && (x as usize) < size && (y as usize) < size {
                    let p = (y as usize * size + x as usize) * 3;
                    img[p..p + 3].copy_from_slice(&c);
                }
            }
        }
    }
    img
}

/// PNG bytes of an RGB image.
pub fn encode_png(rgb: &[u8], width: usize, height: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        let mut w = enc.write_header()?;
        w.write_image_data(rgb)?;
    }
    Ok(out)
}

/// Standard base64 (RFC 4648, with padding) for data: URLs.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                s.push(T[(v >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_examples() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn scatter_paints_each_group_in_its_colour() {
        let xy = [0.0f32, 0.0, 10.0, 10.0];
        let cols = palette(2);
        let img = scatter(&xy, &[0, 1], &cols, 50);
        let has = |c: [u8; 3]| img.chunks(3).any(|p| p == c);
        assert!(has(cols[0]) && has(cols[1]));
        let png = encode_png(&img, 50, 50).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
