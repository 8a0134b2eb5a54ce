//! Checking a password against a stored scheme, the way Dovecot and
//! Courier's authmysql store them: `{SHA512-CRYPT}$6$...`,
//! `{SHA256-CRYPT}$5$...`, `{BLF-CRYPT}$2y$...`, `{ARGON2ID}$argon2id$...`,
//! `{PLAIN}secret`, `{CLEAR}secret`, or a bare crypt(3) string (`$6$`,
//! `$5$`, `$2y$`, `$argon2id$`). Anything else never matches.

use argon2::PasswordVerifier as _;

/// Whether `password` matches `stored`.
pub fn verify(password: &str, stored: &str) -> bool {
    let stored = stored.trim();
    let (scheme, hash) = match stored.strip_prefix('{').and_then(|s| s.split_once('}')) {
        Some((scheme, hash)) => (scheme.to_ascii_uppercase(), hash),
        None => (String::new(), stored),
    };
    match scheme.as_str() {
        "PLAIN" | "CLEAR" | "CLEARTEXT" => constant_time_eq(password.as_bytes(), hash.as_bytes()),
        "SHA512-CRYPT" | "SHA256-CRYPT" | "BLF-CRYPT" | "ARGON2ID" | "ARGON2I" | "CRYPT" | "" => {
            crypt(password, hash)
        }
        _ => false,
    }
}

/// A crypt(3) string, by its `$id$`.
fn crypt(password: &str, hash: &str) -> bool {
    if hash.starts_with("$6$") || hash.starts_with("$5$") {
        let alg = if hash.starts_with("$6$") {
            sha_crypt::Algorithm::Sha512Crypt
        } else {
            sha_crypt::Algorithm::Sha256Crypt
        };
        return sha_crypt::PasswordVerifier::<str>::verify_password(
            &sha_crypt::ShaCrypt::from(alg),
            password.as_bytes(),
            hash,
        )
        .is_ok();
    }
    if hash.starts_with("$2") {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    if hash.starts_with("$argon2") {
        return argon2::Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok();
    }
    false
}

/// Equal bytes, compared without an early exit (the time does not tell
/// how much of a guess was right).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert!(verify("secret", "{PLAIN}secret"));
        assert!(!verify("Secret", "{PLAIN}secret"));
        assert!(verify("secret", "{CLEAR}secret"));
        // Made with `openssl passwd -6 -salt saltsalt secret` and `-5`.
        let sha512 = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        assert!(verify("secret", &format!("{{SHA512-CRYPT}}{sha512}")));
        assert!(verify("secret", sha512));
        assert!(!verify("wrong", sha512));
        let sha256 = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
        assert!(verify("secret", &format!("{{SHA256-CRYPT}}{sha256}")));
        // bcrypt, made here (the crate's hasher with a fixed salt).
        let blf = bcrypt::hash_with_salt("secret", 4, [7u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        assert!(verify("secret", &format!("{{BLF-CRYPT}}{blf}")));
        assert!(!verify("nope", &blf));
        assert!(!verify("secret", "{MD5}whatever"));
        assert!(!verify("secret", "secret"));
    }
}
