//! Boot tokens: the per-server, per-configuration secret in every URL a booting machine fetches
//! after its boot script (ignition, artifacts) and in its metadata requests.
//!
//! A token is an HMAC-SHA256 over the Server's UID and the UID and generation of the boot
//! configuration it boots, under a key shared by every replica (a Secret, created once by
//! whichever replica starts first). It needs no storage, survives restarts, and changes
//! whenever the configuration is replaced or edited; without the key nobody can compute it,
//! and the only way to learn it is the boot script, which the boot server hands out once per
//! recorded power-on ([`api::bootwindow`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use ring::hmac;

/// Secret key under which the token key is stored.
pub const KEY_FIELD: &str = "key";
/// Bytes of key material generated.
const KEY_LEN: usize = 32;
/// Bytes of the MAC kept in a token (192 bits: unguessable, short enough for URLs).
const TAG_LEN: usize = 24;

/// Why the token key cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or creating the Secret failed.
    #[error("boot token key Secret {namespace}/{name}: {source}")]
    Api {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The Secret exists without usable key material.
    #[error(
        "boot token key Secret {namespace}/{name} has no `{KEY_FIELD}` of at least 16 bytes; delete it to let the controller create one"
    )]
    Invalid {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
    },
}

/// The HMAC key of the boot tokens (its bytes are never logged: `Debug` is opaque).
#[derive(Clone)]
pub struct TokenKey(hmac::Key);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from raw bytes.
    pub fn new(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// The token of `server_uid` booting configuration (`sbc_uid`, `sbc_generation`).
    pub fn token(&self, server_uid: &str, sbc_uid: &str, sbc_generation: i64) -> String {
        let tag = hmac::sign(&self.0, &message(server_uid, sbc_uid, sbc_generation));
        URL_SAFE_NO_PAD.encode(&tag.as_ref()[..TAG_LEN])
    }

    /// Whether `presented` is the token of that server and configuration (constant time).
    pub fn verify(
        &self,
        presented: &str,
        server_uid: &str,
        sbc_uid: &str,
        sbc_generation: i64,
    ) -> bool {
        let expected = self.token(server_uid, sbc_uid, sbc_generation);
        constant_time_eq(presented.as_bytes(), expected.as_bytes())
    }
}

/// Compares without an early exit, so the time taken says nothing about how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn message(server_uid: &str, sbc_uid: &str, generation: i64) -> Vec<u8> {
    // Length-prefixed, so no field's bytes can be moved into its neighbour.
    format!(
        "metal-boot-token/v1:{}:{server_uid}:{}:{sbc_uid}:{generation}",
        server_uid.len(),
        sbc_uid.len()
    )
    .into_bytes()
}

/// Reads the key from the Secret `namespace/name`, creating it with fresh random bytes when it
/// does not exist. Create-or-read: when replicas race, the first create wins and everyone reads
/// the winner's key.
pub async fn load_or_create(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<TokenKey, KeyError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let err = |source| KeyError::Api {
        namespace: namespace.to_string(),
        name: name.to_string(),
        source,
    };
    for _ in 0..3 {
        if let Some(secret) = api.get_opt(name).await.map_err(err)? {
            return key_of(&secret).ok_or_else(|| KeyError::Invalid {
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        }
        let mut bytes = [0u8; KEY_LEN];
        rand::fill(&mut bytes);
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_string(),
                        "metal-provisioning".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            immutable: Some(true),
            data: Some([(KEY_FIELD.to_string(), ByteString(bytes.to_vec()))].into()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => return Ok(TokenKey::new(&bytes)),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(err(e)),
        }
    }
    Err(KeyError::Invalid {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

fn key_of(secret: &Secret) -> Option<TokenKey> {
    let bytes = secret.data.as_ref()?.get(KEY_FIELD)?;
    (bytes.0.len() >= 16).then(|| TokenKey::new(&bytes.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_server_configuration_and_generation() {
        let k = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        let t = k.token("srv-uid", "sbc-uid", 1);
        assert_eq!(t.len(), 32, "24 bytes, base64url");
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert!(k.verify(&t, "srv-uid", "sbc-uid", 1));
        assert!(!k.verify(&t, "other-srv", "sbc-uid", 1), "another server");
        assert!(
            !k.verify(&t, "srv-uid", "other-sbc", 1),
            "another configuration"
        );
        assert!(
            !k.verify(&t, "srv-uid", "sbc-uid", 2),
            "an edited configuration"
        );
        assert!(!k.verify("", "srv-uid", "sbc-uid", 1));
        assert!(!k.verify(&t[..31], "srv-uid", "sbc-uid", 1));
        let other = TokenKey::new(b"another key, another installation");
        assert!(!other.verify(&t, "srv-uid", "sbc-uid", 1), "another key");
    }

    #[test]
    fn fields_cannot_be_shifted_between_parts() {
        let k = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        assert_ne!(k.token("a\nb", "c", 1), k.token("a", "b\nc", 1));
        assert_ne!(k.token("a", "b", 11), k.token("a", "b1", 1));
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let k = TokenKey::new(b"super-secret-key-material-here!!");
        assert_eq!(format!("{k:?}"), "TokenKey(..)");
    }

    #[test]
    fn short_or_missing_key_material_is_refused() {
        let mut s = Secret::default();
        assert!(key_of(&s).is_none());
        s.data = Some([(KEY_FIELD.to_string(), ByteString(vec![1; 8]))].into());
        assert!(key_of(&s).is_none());
        s.data = Some([(KEY_FIELD.to_string(), ByteString(vec![1; 32]))].into());
        assert!(key_of(&s).is_some());
    }
}
