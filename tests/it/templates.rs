use std::time::Duration;

use phone_otp::{
    Channel, Locale, Purpose, SmsEncoding, Template, TemplateError, Templates, count_sms_segments,
};
use secrecy::ExposeSecret;

const FIVE_MINUTES: Duration = Duration::from_secs(300);

fn render(templates: &Templates, channel: Channel, purpose: Purpose, locale: Locale) -> String {
    templates
        .render(channel, purpose, locale, "123456", FIVE_MINUTES)
        .expose_secret()
        .to_owned()
}

#[test]
fn default_sms_texts_exist_for_every_purpose_and_locale() {
    let templates = Templates::new("Acme");
    for purpose in Purpose::ALL {
        for locale in [Locale::En, Locale::Ja] {
            let text = render(&templates, Channel::Sms, purpose, locale);
            assert!(text.contains("123456"), "{purpose} {locale}: {text}");
            assert!(text.contains("Acme"), "{text}");
            assert!(text.contains('5'), "minutes missing: {text}");
            // Every default fits in one SMS.
            assert_eq!(
                count_sms_segments(&text).segments,
                1,
                "{purpose} {locale}: {text}"
            );
        }
    }
    assert_eq!(
        render(&templates, Channel::Sms, Purpose::SignIn, Locale::En),
        "123456 is your Acme sign-in code. It expires in 5 minutes. Do not share it."
    );
    let ja = render(&templates, Channel::Sms, Purpose::SignIn, Locale::Ja);
    assert_eq!(count_sms_segments(&ja).encoding, SmsEncoding::Ucs2);
    assert!(ja.contains("ログイン") && ja.contains("5分間有効"), "{ja}");
}

#[test]
fn voice_texts_separate_digits_and_repeat_the_code() {
    let templates = Templates::new("Acme");
    let en = render(&templates, Channel::Voice, Purpose::SignIn, Locale::En);
    assert_eq!(en.matches("1, 2, 3, 4, 5, 6").count(), 2, "{en}");
    assert!(!en.contains("123456"), "{en}");
    let ja = render(&templates, Channel::Voice, Purpose::SignIn, Locale::Ja);
    assert_eq!(ja.matches("1、2、3、4、5、6").count(), 2, "{ja}");

    let custom = Templates::new("Acme").with_template(
        Channel::Voice,
        Purpose::SignIn,
        Locale::En,
        Template::new("Your code: {code}.").unwrap(),
    );
    let spoken = render(&custom, Channel::Voice, Purpose::SignIn, Locale::En);
    assert_eq!(
        spoken.matches("1, 2, 3, 4, 5, 6").count(),
        2,
        "custom voice text repeats: {spoken}"
    );
}

#[test]
fn custom_templates_fill_placeholders_and_are_checked_at_build() {
    let template = Template::new("{app}: {code} ({minutes} min) {{literal}}").unwrap();
    let templates =
        Templates::new("Acme").with_template(Channel::Sms, Purpose::SignUp, Locale::En, template);
    assert_eq!(
        render(&templates, Channel::Sms, Purpose::SignUp, Locale::En),
        "Acme: 123456 (5 min) {literal}"
    );
    // Other purposes keep the default.
    assert!(render(&templates, Channel::Sms, Purpose::SignIn, Locale::En).contains("sign-in"));

    assert_eq!(
        Template::new("no code here"),
        Err(TemplateError::MissingCode)
    );
    assert_eq!(
        Template::new("{code} {user}"),
        Err(TemplateError::UnknownPlaceholder("user".into()))
    );
    assert_eq!(Template::new("{code} {app"), Err(TemplateError::Unclosed));
    assert_eq!(
        TemplateError::MissingCode.to_string(),
        "template has no {code} placeholder"
    );
}

#[test]
fn sms_autofill_lines_are_appended_in_order() {
    let templates = Templates::new("Acme")
        .with_android_app_hash("FA+9qCX9VSu")
        .unwrap()
        .with_web_otp_origin("Login.Example.com")
        .unwrap();
    let text = render(&templates, Channel::Sms, Purpose::SignIn, Locale::En);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[1], "FA+9qCX9VSu");
    assert_eq!(
        lines[2], "@login.example.com #123456",
        "WebOTP line must be last"
    );
    // Voice never gets them.
    let voice = render(&templates, Channel::Voice, Purpose::SignIn, Locale::En);
    assert!(!voice.contains('@') && !voice.contains("FA+9"));

    assert_eq!(
        Templates::new("A")
            .with_web_otp_origin("https://x.com")
            .unwrap_err(),
        TemplateError::InvalidWebOtpOrigin
    );
    assert_eq!(
        Templates::new("A").with_web_otp_origin("").unwrap_err(),
        TemplateError::InvalidWebOtpOrigin
    );
    assert_eq!(
        Templates::new("A")
            .with_android_app_hash("short")
            .unwrap_err(),
        TemplateError::InvalidAppHash
    );
}

#[test]
fn segment_counter_knows_gsm7_extension_and_ucs2() {
    let plain = count_sms_segments(&"a".repeat(160));
    assert_eq!(
        (plain.encoding, plain.units, plain.segments),
        (SmsEncoding::Gsm7, 160, 1)
    );
    assert_eq!(count_sms_segments(&"a".repeat(161)).segments, 2);
    assert_eq!(count_sms_segments(&"a".repeat(307)).segments, 3);
    let euro = count_sms_segments(&"€".repeat(80));
    assert_eq!(
        (euro.encoding, euro.units, euro.segments),
        (SmsEncoding::Gsm7, 160, 1)
    );
    let japanese = count_sms_segments(&"認".repeat(70));
    assert_eq!(
        (japanese.encoding, japanese.segments),
        (SmsEncoding::Ucs2, 1)
    );
    assert_eq!(count_sms_segments(&"認".repeat(71)).segments, 2);
    assert_eq!(count_sms_segments(&"認".repeat(134)).segments, 2);
    assert_eq!(count_sms_segments(&"認".repeat(135)).segments, 3);
    // One emoji turns the whole text to UCS-2 and counts as two code units.
    let emoji = count_sms_segments("code 123456 🙂");
    assert_eq!((emoji.encoding, emoji.units), (SmsEncoding::Ucs2, 14));
}
