//! The ID token's claims, read WITHOUT verifying the signature.
//!
//! The ID token arrives over TLS directly from the issuer's token endpoint, in answer to a request
//! that carried our PKCE verifier; it is stored for the API, which verifies it. We read a few claims
//! (email, ChatGPT account id, plan) only to show the user who signed in and to fill
//! `auth.json`'s `account_id`. No decision of ours that protects anything depends on them: a forged
//! claim could only mislabel the user's own stored credentials.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::error::LoginError;

/// The claim namespace openai/codex reads its ChatGPT fields from.
const AUTH_CLAIMS: &str = "https://api.openai.com/auth";
const PROFILE_CLAIMS: &str = "https://api.openai.com/profile";

/// Claims read from the ID token (unverified; see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdTokenClaims {
    /// `email`, or `https://api.openai.com/profile`.`email`.
    pub email: Option<String>,
    /// `https://api.openai.com/auth`.`chatgpt_account_id`.
    pub account_id: Option<String>,
    /// `https://api.openai.com/auth`.`chatgpt_plan_type`.
    pub plan: Option<String>,
}

/// Decode the payload of a compact JWT (`header.payload.signature`) and read the claims.
pub fn parse_id_token(jwt: &str) -> Result<IdTokenClaims, LoginError> {
    let mut parts = jwt.split('.');
    let (Some(_header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LoginError::IdToken(
            "expected three dot-separated parts".to_string(),
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| LoginError::IdToken(format!("payload is not base64url: {e}")))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| LoginError::IdToken(format!("payload is not json: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(LoginError::IdToken(
            "payload is not a json object".to_string(),
        ));
    };
    // the claims are printed (login, `codex login status`, the app-server): control and
    // formatting characters are escaped here, once (outside review r7 F2: escape sequences in
    // an email claim repainted the terminal at every `login status`)
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(printable);
    let auth = obj.get(AUTH_CLAIMS);
    Ok(IdTokenClaims {
        email: string(obj.get("email"))
            .or_else(|| string(obj.get(PROFILE_CLAIMS).and_then(|p| p.get("email")))),
        account_id: string(auth.and_then(|a| a.get("chatgpt_account_id"))),
        plan: string(auth.and_then(|a| a.get("chatgpt_plan_type"))),
    })
}

/// `s` with every control character and every invisible formatting character (bidi overrides,
/// zero-width characters, BOM) replaced by its `\u{..}` escape: safe to print on a terminal.
pub fn printable(s: &str) -> String {
    let invisible = |c: char| {
        matches!(c,
            '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
    };
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_with_terminal_escapes_are_printable() {
        let t = jwt(&serde_json::json!({
            "email": "ev\u{1b}[2J\u{1b}]0;TITLE\u{7}\r\nFAKE",
            "https://api.openai.com/auth": {"chatgpt_plan_type": "pro\u{202e}"}
        }));
        let c = parse_id_token(&t).unwrap();
        let email = c.email.unwrap();
        assert!(!email.chars().any(char::is_control), "{email:?}");
        assert!(email.starts_with("ev\\u{1b}[2J"), "{email}");
        assert_eq!(c.plan.as_deref(), Some("pro\\u{202e}"));
        assert_eq!(printable("u@example.com"), "u@example.com");
    }

    fn jwt(claims: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
        format!("{h}.{p}.c2ln")
    }

    #[test]
    fn reads_openai_claims() {
        let t = jwt(&serde_json::json!({
            "email": "u@example.com",
            "https://api.openai.com/auth": {"chatgpt_account_id": "acct_1", "chatgpt_plan_type": "plus"}
        }));
        let c = parse_id_token(&t).unwrap();
        assert_eq!(c.email.as_deref(), Some("u@example.com"));
        assert_eq!(c.account_id.as_deref(), Some("acct_1"));
        assert_eq!(c.plan.as_deref(), Some("plus"));
        let t =
            jwt(&serde_json::json!({"https://api.openai.com/profile": {"email": "p@example.com"}}));
        assert_eq!(
            parse_id_token(&t).unwrap().email.as_deref(),
            Some("p@example.com")
        );
    }

    #[test]
    fn rejects_non_jwts() {
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            "a.bm90IGpzb24.c",
            "a.WzFd.c",
        ] {
            assert!(
                matches!(parse_id_token(bad), Err(LoginError::IdToken(_))),
                "{bad}"
            );
        }
    }
}
