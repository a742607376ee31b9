//! The shared vocabulary of gender-classifier: the two classes, the UTKFace demographic groups and the
//! age buckets used for stratified splits and for bias reports.
//!
//! Every other crate depends on this one; it depends on no ML framework, so that the data, model and
//! evaluation crates agree on what "female", "Asian" or "30-39" mean without depending on each other.

pub mod classifier;
pub mod folder;
pub mod malloc;
pub mod matmul;

pub use classifier::{
    ClassLabel, Classifier, ModelError, RgbView, gender_of_label, gender_probabilities, map_labels,
    softmax,
};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The most images one model call, or one training step, may take. Batches gain nothing past a
/// few hundred images on a CPU, and a larger value given by mistake (or in a model's spec) made
/// queues of that many slots: 10^12 aborted `sort` allocating them.
pub const MAX_BATCH: usize = 4096;

/// Perceived gender as labelled in the data. Classes are ordered by name, as Keras'
/// `image_dataset_from_directory` orders class folders, so `Female` is class 0 and `Male` class 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Female,
    Male,
}

impl Gender {
    /// All classes in class-index order.
    pub const ALL: [Gender; 2] = [Gender::Female, Gender::Male];

    /// The class index used by our models and by class folders sorted by name.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<Gender> {
        Gender::ALL.get(i).copied()
    }

    /// The folder and label name.
    pub fn name(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
        }
    }

    /// UTKFace encodes gender as 0 = male, 1 = female: the opposite of our class order.
    pub fn from_utkface_code(code: u32) -> Option<Gender> {
        match code {
            0 => Some(Gender::Male),
            1 => Some(Gender::Female),
            _ => None,
        }
    }
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Gender {
    type Err = ParseLabelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "female" => Ok(Gender::Female),
            "male" => Ok(Gender::Male),
            _ => Err(ParseLabelError {
                kind: "gender",
                value: s.to_string(),
            }),
        }
    }
}

/// The five race groups of UTKFace, in the dataset's code order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Race {
    White,
    Black,
    Asian,
    Indian,
    /// UTKFace's "Others": Hispanic, Latino, Middle Eastern.
    Others,
}

impl Race {
    pub const ALL: [Race; 5] = [
        Race::White,
        Race::Black,
        Race::Asian,
        Race::Indian,
        Race::Others,
    ];

    pub fn from_utkface_code(code: u32) -> Option<Race> {
        Race::ALL.get(code as usize).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Race::White => "white",
            Race::Black => "black",
            Race::Asian => "asian",
            Race::Indian => "indian",
            Race::Others => "others",
        }
    }
}

impl fmt::Display for Race {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Race {
    type Err = ParseLabelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Race::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| ParseLabelError {
                kind: "race",
                value: s.to_string(),
            })
    }
}

/// Age buckets used for stratification and for the bias report. Young children get finer buckets
/// because that is where face-based gender estimation fails most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AgeBucket {
    #[serde(rename = "0-2")]
    A0_2,
    #[serde(rename = "3-9")]
    A3_9,
    #[serde(rename = "10-19")]
    A10_19,
    #[serde(rename = "20-29")]
    A20_29,
    #[serde(rename = "30-39")]
    A30_39,
    #[serde(rename = "40-49")]
    A40_49,
    #[serde(rename = "50-59")]
    A50_59,
    #[serde(rename = "60-69")]
    A60_69,
    #[serde(rename = "70+")]
    A70Plus,
}

impl AgeBucket {
    pub const ALL: [AgeBucket; 9] = [
        AgeBucket::A0_2,
        AgeBucket::A3_9,
        AgeBucket::A10_19,
        AgeBucket::A20_29,
        AgeBucket::A30_39,
        AgeBucket::A40_49,
        AgeBucket::A50_59,
        AgeBucket::A60_69,
        AgeBucket::A70Plus,
    ];

    pub fn of_age(age: u32) -> AgeBucket {
        match age {
            0..=2 => AgeBucket::A0_2,
            3..=9 => AgeBucket::A3_9,
            10..=19 => AgeBucket::A10_19,
            20..=29 => AgeBucket::A20_29,
            30..=39 => AgeBucket::A30_39,
            40..=49 => AgeBucket::A40_49,
            50..=59 => AgeBucket::A50_59,
            60..=69 => AgeBucket::A60_69,
            _ => AgeBucket::A70Plus,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AgeBucket::A0_2 => "0-2",
            AgeBucket::A3_9 => "3-9",
            AgeBucket::A10_19 => "10-19",
            AgeBucket::A20_29 => "20-29",
            AgeBucket::A30_39 => "30-39",
            AgeBucket::A40_49 => "40-49",
            AgeBucket::A50_59 => "50-59",
            AgeBucket::A60_69 => "60-69",
            AgeBucket::A70Plus => "70+",
        }
    }
}

impl fmt::Display for AgeBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A label string that names no known class or group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct ParseLabelError {
    pub kind: &'static str,
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_order_is_alphabetical_like_keras() {
        let mut names: Vec<_> = Gender::ALL.iter().map(|g| g.name()).collect();
        let sorted = {
            let mut s = names.clone();
            s.sort();
            s
        };
        assert_eq!(names, sorted);
        names.dedup();
        assert_eq!(Gender::Female.index(), 0);
        assert_eq!(Gender::Male.index(), 1);
    }

    #[test]
    fn utkface_gender_code_is_inverted() {
        assert_eq!(Gender::from_utkface_code(0), Some(Gender::Male));
        assert_eq!(Gender::from_utkface_code(1), Some(Gender::Female));
        assert_eq!(Gender::from_utkface_code(3), None);
    }

    #[test]
    fn age_bucket_edges() {
        assert_eq!(AgeBucket::of_age(0), AgeBucket::A0_2);
        assert_eq!(AgeBucket::of_age(2), AgeBucket::A0_2);
        assert_eq!(AgeBucket::of_age(3), AgeBucket::A3_9);
        assert_eq!(AgeBucket::of_age(69), AgeBucket::A60_69);
        assert_eq!(AgeBucket::of_age(70), AgeBucket::A70Plus);
        assert_eq!(AgeBucket::of_age(116), AgeBucket::A70Plus);
    }

    #[test]
    fn names_round_trip() {
        for g in Gender::ALL {
            assert_eq!(g.name().parse::<Gender>().unwrap(), g);
        }
        for r in Race::ALL {
            assert_eq!(r.name().parse::<Race>().unwrap(), r);
        }
        assert!("unknown".parse::<Race>().is_err());
    }
}
