//! The key URI as a QR code in SVG (feature `totp-qr`), what a sign-up page shows for an
//! authenticator app to scan. The image carries the secret: serve it once, with
//! `Cache-Control: no-store`, and never log it.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use secrecy::{ExposeSecret, SecretString};

/// Pixels of the smallest side: phone cameras read 200 px codes at arm's length.
const MIN_PIXELS: u32 = 200;

/// `uri` as an SVG QR code (error correction M, the usual quiet zone), or `None` if the
/// URI is too long for a QR code (far beyond any issuer and label a screen shows).
pub fn qr_svg(uri: &SecretString) -> Option<SecretString> {
    let code = QrCode::with_error_correction_level(uri.expose_secret(), EcLevel::M).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(MIN_PIXELS, MIN_PIXELS)
        .build();
    Some(SecretString::from(image))
}
