//! Labels from UTKFace file names: `[age]_[gender]_[race]_[date&time].jpg.chip.jpg`.
//!
//! The published archives hold a few malformed names (see `../shared/data/README.md`). The rule here:
//! a name is accepted when its age, gender and race are still unambiguous, and rejected with a reason
//! otherwise. A gender outside 0/1 and a missing race are rejected: race is needed for stratification and
//! for the bias report, and guessing it would put a wrong label into the audit.

use gc_core::{Gender, Race};

/// The oldest age in UTKFace; anything above is a typo, not a person.
pub const MAX_AGE: u32 = 116;

/// The labels carried by one UTKFace file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtkLabel {
    pub age: u32,
    pub gender: Gender,
    pub race: Race,
}

/// The outcome of reading a name: the labels, plus a note when the name was irregular but accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub label: UtkLabel,
    /// Why an irregular name was still accepted, for the log; `None` for a well-formed name.
    pub note: Option<String>,
}

/// Parses a file's base name (no directories). `Err` holds the reason for `rejected.csv`.
pub fn parse_utkface_name(name: &str) -> Result<Parsed, String> {
    if !name.to_ascii_lowercase().ends_with(".jpg") {
        return Err("not a .jpg file".into());
    }
    let fields: Vec<&str> = name.splitn(4, '_').collect();
    let field = |i: usize| fields.get(i).copied();
    let age = parse_code(field(0).unwrap_or(""), "age")?;
    if age > MAX_AGE {
        return Err(format!("age {age} is above {MAX_AGE}"));
    }
    let gender_code = parse_code(
        field(1).ok_or("expected age_gender_race_datetime, found no gender field")?,
        "gender",
    )?;
    let gender = Gender::from_utkface_code(gender_code)
        .ok_or_else(|| format!("gender code {gender_code} is neither 0 (male) nor 1 (female)"))?;
    let (race, rest) = match (field(2), field(3)) {
        (Some(race), Some(rest)) => (race, rest),
        // The real defect: `61_1_20170109142408075.jpg.chip.jpg`, the race field left out.
        (Some(_), None) => {
            return Err("race field missing (expected age_gender_race_datetime)".into());
        }
        _ => return Err("expected age_gender_race_datetime, found 2 fields".into()),
    };
    let race_code = parse_code(race, "race")?;
    let race = Race::from_utkface_code(race_code)
        .ok_or_else(|| format!("race code {race_code} is outside 0-4"))?;

    let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Err(format!(
            "date&time field {rest:?} does not start with digits"
        ));
    }
    let tail = &rest[digits..];
    let note = if tail.eq_ignore_ascii_case(".jpg.chip.jpg") || tail.eq_ignore_ascii_case(".jpg") {
        None
    } else if tail.trim_start().eq_ignore_ascii_case(".jpg.chip.jpg") {
        Some("space before the extension; labels unambiguous".to_string())
    } else if tail.eq_ignore_ascii_case("jpg.chip.jpg") {
        Some("dot missing before the extension; labels unambiguous".to_string())
    } else {
        Some(format!("unusual suffix {tail:?}; labels unambiguous"))
    };
    Ok(Parsed {
        label: UtkLabel { age, gender, race },
        note,
    })
}

fn parse_code(field: &str, what: &str) -> Result<u32, String> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} field {field:?} is not a number"));
    }
    field
        .parse()
        .map_err(|_| format!("{what} field {field:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str) -> Parsed {
        parse_utkface_name(name).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn well_formed_name() {
        let p = ok("26_1_2_20170116174525125.jpg.chip.jpg");
        assert_eq!(
            p.label,
            UtkLabel {
                age: 26,
                gender: Gender::Female,
                race: Race::Asian
            }
        );
        assert_eq!(p.note, None);
    }

    #[test]
    fn datetime_of_other_lengths_is_not_a_defect() {
        // Both stand in the real archive: 16 and 18 digits.
        assert_eq!(ok("14_0_0_2017011022340900.jpg.chip.jpg").note, None);
        assert_eq!(ok("28_1_2_201701161846515488.jpg.chip.jpg").note, None);
    }

    #[test]
    fn space_before_extension_is_accepted() {
        let p = ok("24_0_1_20170116220224657 .jpg.chip.jpg");
        assert_eq!(p.label.gender, Gender::Male);
        assert_eq!(p.label.race, Race::Black);
        assert_eq!(p.label.age, 24);
        assert!(p.note.unwrap().contains("space"));
    }

    #[test]
    fn missing_dot_is_accepted() {
        let p = ok("55_0_0_20170116232725357jpg.chip.jpg");
        assert_eq!(
            p.label,
            UtkLabel {
                age: 55,
                gender: Gender::Male,
                race: Race::White
            }
        );
        assert!(p.note.unwrap().contains("dot"));
    }

    #[test]
    fn missing_race_is_rejected() {
        for name in [
            "39_1_20170116174525125.jpg.chip.jpg",
            "61_1_20170109142408075.jpg.chip.jpg",
            "61_1_20170109150557335.jpg.chip.jpg",
        ] {
            let e = parse_utkface_name(name).unwrap_err();
            assert!(e.contains("race field missing"), "{name}: {e}");
        }
    }

    #[test]
    fn gender_outside_0_1_is_rejected() {
        let e = parse_utkface_name("61_3_20170109150557335.jpg.chip.jpg").unwrap_err();
        assert!(e.contains("gender code 3"), "{e}");
        let e = parse_utkface_name("61_3_0_20170109150557335.jpg.chip.jpg").unwrap_err();
        assert!(e.contains("gender code 3"), "{e}");
    }

    #[test]
    fn other_garbage_is_rejected_with_a_reason() {
        assert!(
            parse_utkface_name("README.txt")
                .unwrap_err()
                .contains(".jpg")
        );
        assert!(
            parse_utkface_name("x_1_0_2017.jpg")
                .unwrap_err()
                .contains("age")
        );
        assert!(
            parse_utkface_name("200_1_0_2017.jpg")
                .unwrap_err()
                .contains("above")
        );
        assert!(
            parse_utkface_name("20_1_7_2017.jpg")
                .unwrap_err()
                .contains("race code 7")
        );
        assert!(
            parse_utkface_name("20_1_0_abc.jpg")
                .unwrap_err()
                .contains("date")
        );
        assert!(parse_utkface_name("photo.jpg").unwrap_err().contains("age"));
        assert!(
            parse_utkface_name("3_1.jpg")
                .unwrap_err()
                .contains("gender")
        );
    }
}
