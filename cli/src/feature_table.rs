//! The feature flags this CLI knows, and the name check: a leaf module, so that the config
//! loader (which rejects unknown `[features]` names) and `features` (which resolves their state
//! from the config) do not import each other.

/// One known feature.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    pub name: &'static str,
    pub default: bool,
    pub stage: &'static str,
    pub description: &'static str,
}

/// Every feature this CLI knows. Each changes real behaviour (see its description).
pub const FEATURES: &[Feature] = &[
    Feature {
        name: "exec_usage_line",
        default: true,
        stage: "stable",
        description: "codex exec prints the token usage line (from response.completed) on stderr",
    },
    Feature {
        name: "web_search_request",
        default: false,
        stage: "experimental",
        description: "codex exec asks the model for the web_search tool (\"tools\": [{\"type\": \"web_search\"}])",
    },
];

/// An error naming the unknown feature and the known ones.
pub fn check_name(name: &str) -> Result<&'static Feature, String> {
    FEATURES.iter().find(|f| f.name == name).ok_or_else(|| {
        let known: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
        format!("unknown feature {name:?} (known: {})", known.join(", "))
    })
}
