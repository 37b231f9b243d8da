//! Pre-shared keys by key id, kept pre-keyed.

use hmac::{Hmac, KeyInit};
use sha1::Sha1;
use sha2::Sha256;

use super::object::Transform;

/// A pre-shared key.
#[derive(Clone)]
pub struct Key {
    pub transform: Transform,
    pub(crate) sha1: Hmac<Sha1>,
    pub(crate) sha256: Hmac<Sha256>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("transform", &self.transform)
            .finish_non_exhaustive()
    }
}

/// Keys by key id. Each key is kept pre-keyed (the HMAC's inner and outer
/// pads computed once), so a signature costs only the message's blocks.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: std::collections::HashMap<u32, Key>,
}

impl KeyRing {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, key_id: u32, key: &[u8], transform: Transform) {
        self.keys.insert(
            key_id,
            Key {
                transform,
                sha1: Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length"),
                sha256: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"),
            },
        );
    }

    pub fn contains(&self, key_id: u32) -> bool {
        self.keys.contains_key(&key_id)
    }

    /// The key for `key_id`, if held.
    pub fn get(&self, key_id: u32) -> Option<&Key> {
        self.keys.get(&key_id)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
