//! Shared helpers for the integration tests: loading libsignal's reference vectors and replaying
//! the randomness libsignal drew.
#![allow(dead_code, unreachable_pub)]
// Test support: failing loudly on malformed vectors is the point.
#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

pub mod device;
pub mod dm;
pub mod party;

use std::collections::VecDeque;
use std::path::PathBuf;

use serde_json::Value;

/// Loads `tests/vectors/libsignal-v0.73.3/<name>` as JSON.
pub fn vector(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/libsignal-v0.73.3")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read vector {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// Decodes a lowercase hex string from a vector field.
pub fn hex_field(value: &Value) -> Vec<u8> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("expected a hex string, got {value}"));
    hex::decode(text).unwrap_or_else(|e| panic!("bad hex {text}: {e}"))
}

/// Decodes a hex field into a fixed-size array.
pub fn hex_array<const N: usize>(value: &Value) -> [u8; N] {
    let bytes = hex_field(value);
    bytes
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("expected {N} bytes, got {}", b.len()))
}

/// Reads an unsigned integer field.
pub fn uint(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("expected an unsigned integer, got {value}"))
}

/// One logged draw.
#[derive(Debug, Clone)]
enum Draw {
    Bytes(Vec<u8>),
    Words(VecDeque<u32>),
}

/// A generator that serves exactly the draws libsignal logged (`fill_bytes` hex and runs of
/// `next_u32` values) and panics on any other request, so the test fails at the first draw
/// that is out of order, of the wrong kind or of the wrong length.
#[derive(Debug, Default)]
pub struct ReplayRng {
    draws: VecDeque<Draw>,
}

impl ReplayRng {
    /// A generator that must not be used at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds a generator from a vector's `rng_draws` array.
    pub fn from_draws(draws: &Value) -> Self {
        let mut rng = Self::default();
        rng.extend(draws);
        rng
    }

    /// Appends a vector's `rng_draws` array.
    pub fn extend(&mut self, draws: &Value) {
        let draws = draws
            .as_array()
            .unwrap_or_else(|| panic!("rng_draws must be an array: {draws}"));
        for draw in draws {
            match draw["kind"].as_str() {
                Some("fill_bytes") => {
                    let bytes = hex_field(&draw["hex"]);
                    assert_eq!(bytes.len() as u64, uint(&draw["len"]), "draw {draw}");
                    self.draws.push_back(Draw::Bytes(bytes));
                }
                Some("next_u32") => {
                    let values: VecDeque<u32> = draw["values"]
                        .as_array()
                        .expect("values")
                        .iter()
                        .map(|v| u32::try_from(uint(v)).expect("u32"))
                        .collect();
                    assert_eq!(values.len() as u64, uint(&draw["count"]), "draw {draw}");
                    let low: Vec<u8> = values.iter().map(|v| *v as u8).collect();
                    assert_eq!(
                        hex::encode(low),
                        draw["low_bytes_hex"].as_str().expect("low")
                    );
                    self.draws.push_back(Draw::Words(values));
                }
                other => panic!("unknown draw kind {other:?}"),
            }
        }
    }

    /// Appends one `fill_bytes` draw.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.draws.push_back(Draw::Bytes(bytes.to_vec()));
    }

    /// Appends a run of `next_u32` draws.
    pub fn push_words(&mut self, words: &[u32]) {
        self.draws
            .push_back(Draw::Words(words.iter().copied().collect()));
    }

    /// Panics if some logged draws were not consumed.
    pub fn assert_exhausted(&self) {
        assert!(self.draws.is_empty(), "unconsumed draws: {:?}", self.draws);
    }
}

impl rand_core::TryRng for ReplayRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let Some(Draw::Words(words)) = self.draws.front_mut() else {
            panic!(
                "next_u32 requested, next logged draw is {:?}",
                self.draws.front()
            );
        };
        let word = words.pop_front().expect("non-empty run");
        if words.is_empty() {
            self.draws.pop_front();
        }
        Ok(word)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        panic!("libsignal never draws next_u64 in these flows");
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        match self.draws.pop_front() {
            Some(Draw::Bytes(bytes)) if bytes.len() == dst.len() => {
                dst.copy_from_slice(&bytes);
                Ok(())
            }
            other => panic!(
                "fill_bytes({}) requested, next logged draw is {other:?}",
                dst.len()
            ),
        }
    }
}

impl rand_core::TryCryptoRng for ReplayRng {}

/// The seeded generator libsignal's vectors were made with.
pub fn seeded(seed: &Value) -> rand_chacha::ChaCha20Rng {
    <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(uint(seed))
}

/// Randomness for one party of a scenario: either the logged draws replayed, or the seeded
/// ChaCha20 stream libsignal used, recorded so each event's draws can be compared with the log.
#[derive(Debug)]
pub enum ScenarioRng {
    /// Serves the logged draws.
    Replay(ReplayRng),
    /// The seeded stream, with the draws made since the last [`ScenarioRng::expect`].
    Seeded {
        /// The generator (boxed: it is much larger than the replay variant).
        rng: Box<rand_chacha::ChaCha20Rng>,
        /// What the current event drew so far.
        recorded: Vec<RecordedDraw>,
        /// What the current event must draw.
        expected: Vec<RecordedDraw>,
    },
}

/// A draw as recorded from a live generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedDraw {
    /// `fill_bytes` output.
    Bytes(Vec<u8>),
    /// A run of `next_u32` outputs.
    Words(Vec<u32>),
}

fn recorded_draws(draws: &Value) -> Vec<RecordedDraw> {
    draws
        .as_array()
        .expect("rng_draws array")
        .iter()
        .map(|draw| match draw["kind"].as_str() {
            Some("fill_bytes") => RecordedDraw::Bytes(hex_field(&draw["hex"])),
            Some("next_u32") => RecordedDraw::Words(
                draw["values"]
                    .as_array()
                    .expect("values")
                    .iter()
                    .map(|v| u32::try_from(uint(v)).expect("u32"))
                    .collect(),
            ),
            other => panic!("unknown draw kind {other:?}"),
        })
        .collect()
}

impl ScenarioRng {
    /// A replaying generator with nothing queued yet.
    pub fn replay() -> Self {
        Self::Replay(ReplayRng::empty())
    }

    /// The seeded generator for `seed`.
    pub fn seeded(seed: &Value) -> Self {
        Self::Seeded {
            rng: Box::new(seeded(seed)),
            recorded: Vec::new(),
            expected: Vec::new(),
        }
    }

    /// Declares the draws the next operation must make (queues them when replaying).
    pub fn expect(&mut self, draws: &Value) {
        match self {
            Self::Replay(rng) => rng.extend(draws),
            Self::Seeded {
                recorded, expected, ..
            } => {
                recorded.clear();
                *expected = recorded_draws(draws);
            }
        }
    }

    /// Checks that exactly the declared draws were made.
    pub fn check(&mut self, context: &str) {
        match self {
            Self::Replay(rng) => rng.assert_exhausted(),
            Self::Seeded {
                recorded, expected, ..
            } => {
                assert_eq!(
                    recorded, expected,
                    "seeded draws differ from the log in {context}"
                );
                recorded.clear();
                expected.clear();
            }
        }
    }
}

impl rand_core::TryRng for ScenarioRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        match self {
            Self::Replay(rng) => rand_core::TryRng::try_next_u32(rng),
            Self::Seeded { rng, recorded, .. } => {
                let word = rand_core::Rng::next_u32(rng.as_mut());
                match recorded.last_mut() {
                    Some(RecordedDraw::Words(words)) => words.push(word),
                    _ => recorded.push(RecordedDraw::Words(vec![word])),
                }
                Ok(word)
            }
        }
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        panic!("libsignal never draws next_u64 in these flows");
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        match self {
            Self::Replay(rng) => rand_core::TryRng::try_fill_bytes(rng, dst),
            Self::Seeded { rng, recorded, .. } => {
                rand_core::Rng::fill_bytes(rng.as_mut(), dst);
                recorded.push(RecordedDraw::Bytes(dst.to_vec()));
                Ok(())
            }
        }
    }
}

impl rand_core::TryCryptoRng for ScenarioRng {}

/// Checks a committed generated file (a fuzz seed, a frozen fixture) against what this release
/// generates. With `SPOTS_WRITE_GENERATED=1` a missing file is written, and a differing one is
/// rewritten only when `may_overwrite` (seeds may follow the formats; frozen fixtures are a
/// compatibility promise and never change for their version).
pub fn assert_committed(path: &std::path::Path, generated: &[u8], may_overwrite: bool) {
    let write = std::env::var_os("SPOTS_WRITE_GENERATED").is_some();
    match std::fs::read(path) {
        Ok(committed) if committed == generated => {}
        Ok(_) if write && may_overwrite => {
            std::fs::write(path, generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        Ok(_) => panic!(
            "{} differs from what this release generates{}",
            path.display(),
            if may_overwrite {
                " (rewrite with SPOTS_WRITE_GENERATED=1)"
            } else {
                ": a frozen fixture must not change; add a new format version instead"
            }
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && write => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            }
            std::fs::write(path, generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        Err(e) => panic!(
            "{}: {e} (generate it with SPOTS_WRITE_GENERATED=1)",
            path.display()
        ),
    }
}
