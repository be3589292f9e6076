//! "Did you mean …?" for names users misspell: perturbations, config keys.

/// The candidate closest to `name` by edit distance, if it is close enough to be a
/// plausible typo (at most a third of the name's length, and at most 3 edits).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, c)| (d, c))
        .map(|(_, c)| c)
}

/// `; did you mean X?` or nothing.
pub fn hint<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(name, candidates)
        .map(|c| format!("; did you mean {c}?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_name_and_strangers_find_none() {
        let names = [
            "batch_size",
            "max_new_tokens",
            "path",
            "gaussian-noise",
            "gamma",
        ];
        assert_eq!(closest("batchsize", names), Some("batch_size"));
        assert_eq!(closest("gausian-noise", names), Some("gaussian-noise"));
        assert_eq!(closest("ptah", names), Some("path"));
        assert_eq!(closest("resolution", names), None);
        assert_eq!(hint("gama", names), "; did you mean gamma?");
        assert_eq!(hint("zzzzzz", names), "");
    }
}
