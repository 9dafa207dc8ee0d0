//! Custom templates: building never panics; a built template renders with the code in it
//! on every channel and locale.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use phone_otp::{Channel, Locale, Purpose, Template, Templates};
use secrecy::ExposeSecret;

fuzz_target!(|data: &[u8]| {
    // The template text, a NUL, the app name, a NUL, then the lifetime in seconds.
    let input = String::from_utf8_lossy(data);
    let mut parts = input.splitn(3, '\0');
    let (text, app) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let seconds: u16 = parts
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(300);
    let Ok(template) = Template::new(text) else {
        return;
    };
    for channel in [Channel::Sms, Channel::Voice] {
        for locale in [Locale::En, Locale::Ja] {
            let templates = Templates::new(app).with_template(
                channel,
                Purpose::SignIn,
                locale,
                template.clone(),
            );
            let rendered = templates.render(
                channel,
                Purpose::SignIn,
                locale,
                "123456",
                Duration::from_secs(u64::from(seconds)),
            );
            let rendered = rendered.expose_secret();
            match channel {
                Channel::Sms => assert!(rendered.contains("123456"), "{rendered}"),
                _ => assert!(
                    rendered.contains('1') && rendered.contains('6'),
                    "{rendered}"
                ),
            }
        }
    }
});
