//! A device login's `verification_uri_complete` (RFC 8628 §3.3.1) as a QR code, so the person
//! can open the sign-in with the code filled in by pointing a phone at the run page.
//!
//! Key design decision: the `qrcode` crate only encodes (no features, no dependencies); the SVG
//! is drawn here as one path, server-side, so the page loads nothing and runs no script for it.

use qrcode::{Color, EcLevel, QrCode};

/// Longer URIs get no QR code: the provider's URI is short in practice, and a QR code past
/// this is too dense to scan from a screen. The link is shown either way.
pub const MAX_URI_BYTES: usize = 512;
/// Light modules around the code, as ISO/IEC 18004 asks.
const QUIET_ZONE: usize = 4;

/// The URI as an SVG QR code (error correction level M), or `None` when it is too long.
pub fn svg(uri: &str) -> Option<String> {
    if uri.is_empty() || uri.len() > MAX_URI_BYTES {
        return None;
    }
    let code = QrCode::with_error_correction_level(uri, EcLevel::M).ok()?;
    let width = code.width();
    let mut path = String::new();
    for (i, colour) in code.to_colors().into_iter().enumerate() {
        if colour == Color::Dark {
            let (x, y) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
            path += &format!("M{x} {y}h1v1h-1z");
        }
    }
    let size = width + 2 * QUIET_ZONE;
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code of the sign-in link\">\
         <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the drawn code back: the path's modules at 4 pixels each, through another decoder.
    fn decode(svg: &str) -> String {
        let size: usize = svg
            .split("viewBox=\"0 0 ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let path = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut dark = vec![false; size * size];
        for module in path.split('M').filter(|m| !m.is_empty()) {
            let corner = module.trim_end_matches("h1v1h-1z");
            let (x, y) = corner.split_once(' ').unwrap();
            dark[y.parse::<usize>().unwrap() * size + x.parse::<usize>().unwrap()] = true;
        }
        let image = rqrr::PreparedImage::prepare_from_greyscale(size * 4, size * 4, |x, y| {
            if dark[y / 4 * size + x / 4] { 0 } else { 255 }
        });
        let mut image = image;
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    #[test]
    fn the_drawn_code_reads_back_as_the_uri() {
        for uri in [
            "https://idp.example/device?user_code=WDJB-MJHT",
            "https://microsoft.com/devicelogin",
            &format!("https://idp.example/device?user_code={}", "Q".repeat(400)),
        ] {
            assert_eq!(decode(&svg(uri).unwrap()), uri);
        }
    }

    #[test]
    fn a_uri_becomes_one_square_svg_with_a_quiet_zone() {
        let uri = "https://idp.example/device?user_code=WDJB-MJHT";
        let svg = svg(uri).unwrap();
        let code = QrCode::with_error_correction_level(uri, EcLevel::M).unwrap();
        let size = code.width() + 2 * QUIET_ZONE;
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains(&format!("viewBox=\"0 0 {size} {size}\"")));
        assert!(svg.contains("M4 4h1v1h-1z"), "a finder pattern's corner");
        assert!(!svg.contains("user_code"), "the data is drawn, not written");
    }

    #[test]
    fn an_empty_or_too_long_uri_gets_none() {
        assert_eq!(svg(""), None);
        let long = format!("https://idp.example/{}", "a".repeat(MAX_URI_BYTES));
        assert_eq!(svg(&long), None);
    }
}
