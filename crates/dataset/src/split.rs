//! The stratified, reproducible train/val/test split.
//!
//! Units of assignment are groups of byte-identical images (found by SHA-256), so a face stored under two
//! names never lands in two splits. Units are stratified by gender x race x age bucket; inside a
//! stratum, each split gets the floor or the ceiling of its share (so every split is within one image
//! of its exact share whenever duplicate groups allow it), and the leftover images go where the overall
//! totals lag most, which keeps the global 60/20/20 too.
//!
//! The order is keyed by SHA-256(seed, content hash) rather than by a random-number generator, so the
//! same seed gives the same split on any machine and with any version of `rand`.

use gc_core::{AgeBucket, Gender, Race};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The three parts of a split, in manifest order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Split::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| format!("unknown split {s:?} (expected train, val or test)"))
    }
}

/// Fractions of train, val and test; they sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fractions(pub [f64; 3]);

impl Default for Fractions {
    fn default() -> Self {
        Fractions([0.6, 0.2, 0.2])
    }
}

impl std::str::FromStr for Fractions {
    type Err = String;
    /// Parses `0.6,0.2,0.2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{p:?} is not a number"))
            })
            .collect::<Result<_, _>>()?;
        let [a, b, c] = parts[..] else {
            return Err(format!(
                "expected 3 fractions train,val,test, found {}",
                parts.len()
            ));
        };
        if [a, b, c].iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err(format!("fractions must be non-negative, found {s}"));
        }
        if ((a + b + c) - 1.0).abs() > 1e-6 {
            return Err(format!(
                "fractions must sum to 1, {s} sums to {}",
                a + b + c
            ));
        }
        Ok(Fractions([a, b, c]))
    }
}

/// The stratum of a unit.
pub type Stratum = (Gender, Race, AgeBucket);

/// One unit to place: a group of identical images.
#[derive(Debug, Clone)]
pub struct Unit {
    /// SHA-256 of the content, hex.
    pub sha256: String,
    pub stratum: Stratum,
    /// How many images (names) share this content.
    pub images: usize,
}

/// Assigns every unit a split. Returns one split per unit, in the input order.
pub fn assign(units: &[Unit], fractions: Fractions, seed: u64) -> Vec<Split> {
    let mut by_stratum: BTreeMap<Stratum, Vec<usize>> = BTreeMap::new();
    for (i, u) in units.iter().enumerate() {
        by_stratum.entry(u.stratum).or_default().push(i);
    }
    let keys: Vec<[u8; 32]> = units.iter().map(|u| order_key(seed, &u.sha256)).collect();
    let f = fractions.0;
    let mut out = vec![Split::Train; units.len()];
    // Images seen and placed so far, to steer leftovers toward the splits that lag overall.
    let mut seen = 0usize;
    let mut placed = [0usize; 3];

    for members in by_stratum.values_mut() {
        let n: usize = members.iter().map(|&i| units[i].images).sum();
        seen += n;
        let exact = f.map(|x| x * n as f64);
        let mut target = exact.map(|x| x.floor() as usize);
        let leftover = n - target.iter().sum::<usize>();
        // A leftover image may go to any split whose exact share is fractional (it then gets the
        // ceiling of its share); among those, to the split that lags most overall.
        let mut order = [0usize, 1, 2];
        order.sort_by(|&a, &b| {
            let eligible = |s: usize| exact[s] > exact[s].floor();
            let lag = |s: usize| f[s] * seen as f64 - (placed[s] + target[s]) as f64;
            eligible(b)
                .cmp(&eligible(a))
                .then(lag(b).total_cmp(&lag(a)))
                .then(a.cmp(&b))
        });
        for &s in order.iter().take(leftover) {
            target[s] += 1;
        }

        // Largest groups first, so singletons can fill the gaps they leave; then by key (random order).
        members.sort_by(|&a, &b| {
            units[b]
                .images
                .cmp(&units[a].images)
                .then(keys[a].cmp(&keys[b]))
        });
        let mut room = target.map(|t| t as i64);
        for &i in members.iter() {
            let s = (0..3)
                .max_by(|&a, &b| room[a].cmp(&room[b]).then(b.cmp(&a)))
                .unwrap_or(0);
            room[s] -= units[i].images as i64;
            placed[s] += units[i].images;
            out[i] = Split::ALL[s];
        }
    }
    out
}

fn order_key(seed: u64, sha256: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"gender-classifier split v1");
    h.update(seed.to_le_bytes());
    h.update(sha256.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(n: usize, stratum: Stratum) -> Vec<Unit> {
        (0..n)
            .map(|i| Unit {
                sha256: format!("{i:064x}"),
                stratum,
                images: 1,
            })
            .collect()
    }

    const S1: Stratum = (Gender::Female, Race::White, AgeBucket::A20_29);
    const S2: Stratum = (Gender::Male, Race::Asian, AgeBucket::A0_2);

    fn count(split: &[Split], units: &[Unit], s: Split) -> usize {
        split
            .iter()
            .zip(units)
            .filter(|(x, _)| **x == s)
            .map(|(_, u)| u.images)
            .sum()
    }

    #[test]
    fn exact_shares_when_divisible() {
        let u = units(100, S1);
        let s = assign(&u, Fractions::default(), 7);
        assert_eq!(count(&s, &u, Split::Train), 60);
        assert_eq!(count(&s, &u, Split::Val), 20);
        assert_eq!(count(&s, &u, Split::Test), 20);
    }

    #[test]
    fn every_split_within_one_of_its_share() {
        for n in 1..40 {
            let mut u = units(n, S1);
            u.extend(units(n + 3, S2).into_iter().map(|mut x| {
                x.sha256.push('b');
                x
            }));
            let s = assign(&u, Fractions::default(), 1);
            for stratum in [S1, S2] {
                let members: Vec<usize> =
                    (0..u.len()).filter(|&i| u[i].stratum == stratum).collect();
                let total = members.len() as f64;
                for (k, split) in Split::ALL.into_iter().enumerate() {
                    let c = members.iter().filter(|&&i| s[i] == split).count() as f64;
                    let share = Fractions::default().0[k] * total;
                    assert!((c - share).abs() < 1.0, "n={n} {split}: {c} vs {share}");
                }
            }
        }
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let u = units(50, S1);
        let a = assign(&u, Fractions::default(), 42);
        let b = assign(&u, Fractions::default(), 42);
        let c = assign(&u, Fractions::default(), 43);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn input_order_does_not_matter() {
        let u = units(30, S1);
        let a = assign(&u, Fractions::default(), 5);
        let mut rev = u.clone();
        rev.reverse();
        let mut b = assign(&rev, Fractions::default(), 5);
        b.reverse();
        assert_eq!(a, b);
    }

    #[test]
    fn groups_are_placed_whole_and_shares_kept() {
        let mut u = units(20, S1);
        u[0].images = 3;
        let s = assign(&u, Fractions::default(), 3);
        let total: usize = u.iter().map(|x| x.images).sum();
        assert_eq!(total, 22);
        let train = count(&s, &u, Split::Train) as f64;
        assert!((train - 0.6 * 22.0).abs() < 1.0, "{train}");
    }

    #[test]
    fn fractions_parse_and_validate() {
        assert_eq!(
            "0.6,0.2,0.2".parse::<Fractions>().unwrap(),
            Fractions::default()
        );
        assert!(
            "0.5,0.2,0.2"
                .parse::<Fractions>()
                .unwrap_err()
                .contains("sum")
        );
        assert!("0.6,0.4".parse::<Fractions>().unwrap_err().contains("3"));
        assert!("a,b,c".parse::<Fractions>().is_err());
        assert!(
            "1.2,-0.2,0"
                .parse::<Fractions>()
                .unwrap_err()
                .contains("non-negative")
        );
    }
}
