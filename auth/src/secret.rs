//! [`mask_api_key`]. The credential type itself is `secure_main::SecretString` (re-exported here).

/// Mask an API key for display: the first 8 and the last 5 characters, `...` between.
///
/// Keys shorter than 21 characters would show more than half of themselves that way; they are
/// shown as `***` followed by the length only.
pub fn mask_api_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 21 {
        return format!("*** ({} characters)", chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 5..].iter().collect();
    format!("{head}...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_shows_first_8_last_5() {
        assert_eq!(
            mask_api_key("sk-proj-abcdefghijklmnopqrstuvwxyz"),
            "sk-proj-...vwxyz"
        );
        assert_eq!(mask_api_key("sk-short"), "*** (8 characters)");
        // Multi-byte characters are counted as characters, never split.
        assert_eq!(
            mask_api_key("ééééééééxxxxxxxxxxxxxxxxxxxxxüüüüü"),
            "éééééééé...üüüüü"
        );
    }
}
