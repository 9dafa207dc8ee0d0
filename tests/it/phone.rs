use phone_otp::{NumberType, ParsePhoneError, PhoneNumber};

#[test]
fn parses_e164_and_national_formats_to_the_same_number() {
    let e164 = PhoneNumber::parse("+819012345678").unwrap();
    let national = PhoneNumber::parse_with_region("090-1234-5678", "JP").unwrap();
    let spaced = PhoneNumber::parse("+81 90 1234 5678").unwrap();
    assert_eq!(e164, national);
    assert_eq!(e164, spaced);
    assert_eq!(national.e164(), "+819012345678");
    assert_eq!(national.calling_code(), 81);
    assert_eq!(national.region().unwrap().as_str(), "JP");
    assert_eq!(national.national_number(), "9012345678");
}

#[test]
fn folds_full_width_digits_used_in_japanese_input() {
    let number = PhoneNumber::parse_with_region("０９０－１２３４－５６７８", "jp").unwrap();
    assert_eq!(number.e164(), "+819012345678");
}

#[test]
fn reports_number_types() {
    let cases = [
        ("+819012345678", NumberType::Mobile),
        ("+81312345678", NumberType::FixedLine),
        ("+81120123456", NumberType::TollFree),
        ("+81990123456", NumberType::PremiumRate),
        ("+815012345678", NumberType::Voip),
        ("+14155550123", NumberType::FixedLineOrMobile),
        ("+447911123456", NumberType::Mobile),
    ];
    for (input, expected) in cases {
        let number = PhoneNumber::parse(input).unwrap();
        assert_eq!(number.number_type(), expected, "{input}");
    }
}

#[test]
fn display_and_debug_are_masked() {
    let number = PhoneNumber::parse("+819012345678").unwrap();
    assert_eq!(number.to_string(), "+8190****5678");
    assert_eq!(number.masked(), "+8190****5678");
    let debug = format!("{number:?}");
    assert!(debug.contains("+8190****5678"), "{debug}");
    assert!(!debug.contains("12345678"), "{debug}");
    let us = PhoneNumber::parse("+14155550123").unwrap();
    assert_eq!(us.to_string(), "+141****0123");
}

#[test]
fn every_kind_of_bad_input_has_its_own_error() {
    let cases: &[(&str, Option<&str>, ParsePhoneError)] = &[
        ("", None, ParsePhoneError::Empty),
        ("   ", Some("JP"), ParsePhoneError::Empty),
        ("+81 90 CALL ME", None, ParsePhoneError::InvalidCharacter),
        (
            "+819012345678 ext. 12",
            None,
            ParsePhoneError::InvalidCharacter,
        ),
        (
            "090+12345678",
            Some("JP"),
            ParsePhoneError::InvalidCharacter,
        ),
        ("+81", None, ParsePhoneError::TooShort),
        ("12", Some("JP"), ParsePhoneError::TooShort),
        ("+8190123456789012345", None, ParsePhoneError::TooLong),
        ("09012345678", None, ParsePhoneError::MissingRegion),
        ("09012345678", Some("XX"), ParsePhoneError::UnknownRegion),
        ("09012345678", Some("Japan"), ParsePhoneError::UnknownRegion),
        ("+999 1234 5678", None, ParsePhoneError::UnknownCallingCode),
        (
            "+81 90 1234",
            None,
            ParsePhoneError::InvalidForRegion {
                region: "JP".into(),
            },
        ),
    ];
    for (input, region, expected) in cases {
        let result = match region {
            Some(region) => PhoneNumber::parse_with_region(input, region),
            None => PhoneNumber::parse(input),
        };
        assert_eq!(result.as_ref().err(), Some(expected), "input {input:?}");
    }
    let too_many_chars = "1".repeat(65);
    assert_eq!(
        PhoneNumber::parse(&too_many_chars).unwrap_err(),
        ParsePhoneError::TooLong
    );
}

#[test]
fn error_messages_say_what_is_wrong_without_echoing_input() {
    let error = PhoneNumber::parse("+81 90 1234").unwrap_err();
    assert_eq!(error.to_string(), "phone number is not valid for region JP");
    let error = PhoneNumber::parse("09012345678").unwrap_err();
    assert!(error.to_string().contains("no default region"), "{error}");
    let error = PhoneNumber::parse("+81 90 SECRET").unwrap_err();
    assert!(!error.to_string().contains("SECRET"));
}

#[test]
fn never_panics_on_arbitrary_input() {
    // A deterministic spread of awkward inputs: separators, pluses, unicode, long digit runs.
    let alphabet: Vec<char> = "0123456789+-() ./#*x０１２＋－\u{200b}é日\n\t"
        .chars()
        .collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 24) as usize;
        let input: String = (0..len)
            .map(|i| alphabet[((state >> (i % 8 * 8)) as usize + i) % alphabet.len()])
            .collect();
        let _ = PhoneNumber::parse(&input);
        let _ = PhoneNumber::parse_with_region(&input, "JP");
        let _ = PhoneNumber::parse_with_region(&input, "US");
    }
}

/// Found by fuzzing: with a default region, the parser read `+708773111632` (an invalid
/// Russian number) as `+78773111632`, dropping a digit. An international number must read
/// the same whatever the default region, and normalising must be idempotent.
#[test]
fn international_input_ignores_the_default_region() {
    for region in ["JP", "US", "RU"] {
        assert!(
            PhoneNumber::parse_with_region("+708773111632", region).is_err(),
            "{region}"
        );
        let number = PhoneNumber::parse_with_region("+81 90-1234-5678", region).unwrap();
        assert_eq!(number.e164(), "+819012345678");
    }
}

/// Found by fuzzing: `0800000000000069` read in Japan was accepted as a 17-digit "E.164"
/// number that did not parse back. E.164 numbers have at most 15 digits.
#[test]
fn numbers_over_fifteen_digits_are_refused() {
    assert_eq!(
        PhoneNumber::parse_with_region("0800000000000069", "JP"),
        Err(ParsePhoneError::TooLong)
    );
}

/// Found by fuzzing: `000037000037` read in Japan was accepted as `+810037000037`, which
/// the parser then calls invalid. Every accepted number reads back from its E.164 form.
#[test]
fn accepted_numbers_read_back_from_their_e164_form() {
    assert!(matches!(
        PhoneNumber::parse_with_region("000037000037", "JP"),
        Err(ParsePhoneError::InvalidForRegion { .. })
    ));
    for (input, region) in [
        ("090-1234-5678", "JP"),
        ("(415) 555-0123", "US"),
        ("+44 7911 123456", "JP"),
    ] {
        let number = PhoneNumber::parse_with_region(input, region).unwrap();
        assert_eq!(PhoneNumber::parse(number.e164()).unwrap(), number);
    }
}
