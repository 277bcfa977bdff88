//! The lookups a pre-check makes against what is stored for a requirement: the
//! asset whose parameters match. They are derived from the catalog so that the
//! server keeps one index per lookup instead of reading every asset of a type.
//! (Quota usage is kept as counters, see the server's `storage::quota`.)

use std::collections::BTreeSet;

use super::Catalog;

/// Rows of `type_name` whose parameters equal given values on `keys` (in this
/// order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lookup {
    pub type_name: String,
    pub keys: Vec<String>,
}

/// A parameter name that can be written into an index expression as it is:
/// letters, digits and '_', not starting with a digit.
pub fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Catalog {
    /// Every distinct lookup the catalog's requirements make.
    pub fn lookups(&self) -> Vec<Lookup> {
        let mut all = BTreeSet::new();
        for ty in self.types.values() {
            for req in &ty.requires {
                all.insert(Lookup {
                    type_name: req.type_name.clone(),
                    keys: req.r#match.keys().cloned().collect(),
                });
            }
        }
        all.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_identifiers() {
        for ok in ["team", "cpu_limit", "_x", "A1"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "a'b", "a b", "ä"] {
            assert!(!is_plain_name(bad), "{bad}");
        }
    }
}
