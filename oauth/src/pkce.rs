//! PKCE (RFC 7636, method S256), the `state` value and login ids: all from the OS RNG.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::Digest;

use secure_main::SecretString;

/// A PKCE pair. The verifier never leaves the process except in the token request.
pub struct PkceCodes {
    /// 64 random bytes, base64url: 86 characters (RFC 7636 allows 43..=128).
    pub verifier: SecretString,
    /// `BASE64URL(SHA256(verifier))`, sent in the authorize URL.
    pub challenge: String,
}

/// The S256 challenge for `verifier`.
pub fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A fresh verifier and its S256 challenge.
pub fn generate_pkce() -> PkceCodes {
    let verifier = random_b64(64);
    let challenge = challenge_for(&verifier);
    PkceCodes {
        verifier: SecretString::new(verifier),
        challenge,
    }
}

/// A fresh `state`: 32 random bytes, base64url (256 bits, unguessable).
pub fn generate_state() -> String {
    random_b64(32)
}

/// A random id for a login (16 bytes, hex): used by the app-server's `loginId`.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let out = URL_SAFE_NO_PAD.encode(&bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        // RFC 7636, Appendix B.
        assert_eq!(
            challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn fresh_values_differ_and_have_rfc_lengths() {
        let a = generate_pkce();
        let b = generate_pkce();
        assert_ne!(a.verifier.expose_secret(), b.verifier.expose_secret());
        let n = a.verifier.expose_secret().len();
        assert!((43..=128).contains(&n), "verifier length {n}");
        assert_eq!(a.challenge, challenge_for(a.verifier.expose_secret()));
        assert_ne!(generate_state(), generate_state());
        assert_eq!(random_id().len(), 32);
    }
}
