//! Unique var_names. anndata accepts repeated gene names (with a warning); scdreamer matches
//! genes by name (`--genes`, `embed`), so a repeated name would pick one column silently.
//! Names are made unique on reading exactly as anndata's `var_names_make_unique()` does (the
//! second 'X' becomes 'X-1', skipping names that exist), so a file read twice gets the same
//! names, and matching is defined on them.

use std::collections::{HashMap, HashSet};

/// Makes `names` unique in place (anndata's `make_index_unique` with join "-"); returns the
/// names that occurred more than once, in order of first occurrence.
pub fn make_unique(names: &mut [String]) -> Vec<String> {
    let mut seen: HashSet<String> = HashSet::with_capacity(names.len());
    let mut dup_rows = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if !seen.insert(n.clone()) {
            dup_rows.push(i);
        }
    }
    if dup_rows.is_empty() {
        return Vec::new();
    }
    let mut repeated: Vec<String> = Vec::new();
    let mut counter: HashMap<String, usize> = HashMap::new();
    for &i in &dup_rows {
        let base = names[i].clone();
        if !repeated.contains(&base) {
            repeated.push(base.clone());
        }
        let k = counter.entry(base.clone()).or_insert(0);
        loop {
            *k += 1;
            let candidate = format!("{base}-{k}");
            if seen.insert(candidate.clone()) {
                names[i] = candidate;
                break;
            }
        }
    }
    repeated
}

/// One line for the user about `repeated` names of `what` (e.g. "var_names").
pub fn repeated_warning(repeated: &[String], what: &str) -> String {
    let shown: Vec<String> = repeated.iter().take(5).map(|n| format!("'{n}'")).collect();
    format!(
        "{} {what} occur more than once ({}{}): made unique as anndata's \
         var_names_make_unique() does (the second '{}' is now '{}-1'); --genes and embed match \
         these unique names",
        repeated.len(),
        shown.join(", "),
        if repeated.len() > 5 { ", ..." } else { "" },
        repeated[0],
        repeated[0]
    )
}

/// Owned copies of `s`, for unit tests.
#[cfg(test)]
pub(crate) fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::strings as v;
    use super::*;

    /// The cases of anndata's own docstring and a collision with an existing name.
    #[test]
    fn matches_anndata_make_index_unique() {
        let mut n = v(&["a", "a", "a", "b"]);
        assert_eq!(make_unique(&mut n), v(&["a"]));
        assert_eq!(n, v(&["a", "a-1", "a-2", "b"]));
        let mut n = v(&["a", "a-1", "a"]);
        make_unique(&mut n);
        assert_eq!(n, v(&["a", "a-1", "a-2"]));
        let mut n = v(&["x", "y"]);
        assert!(make_unique(&mut n).is_empty());
        assert_eq!(n, v(&["x", "y"]));
    }
}
