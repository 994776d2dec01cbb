//! KV version 2 response types. Secret data is deserialized straight into secrets: every value
//! as a `SecretString`, and the whole object as JSON text, also secret.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// The `data` object of a KV v2 secret version.
pub struct SecretData {
    /// Each key's value: strings as they are, other JSON values as JSON text.
    entries: BTreeMap<String, SecretString>,
    /// The whole object as JSON.
    json: SecretString,
}

impl SecretData {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&SecretString> {
        self.entries.get(key)
    }

    /// The value under `key` if it is non-empty.
    pub fn non_empty(&self, key: &str) -> Option<&SecretString> {
        self.get(key)
            .filter(|v| !v.expose_secret().trim().is_empty())
    }

    /// Key names (not secret) for diagnostics.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// All entries.
    pub fn entries(&self) -> &BTreeMap<String, SecretString> {
        &self.entries
    }

    /// The whole object as JSON text.
    pub fn json(&self) -> &SecretString {
        &self.json
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretData")
            .field("keys", &self.entries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<'de> Deserialize<'de> for SecretData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let map = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        let json = serde_json::to_string(&map).map_err(D::Error::custom)?;
        let entries = map
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, SecretString::from(text))
            })
            .collect();
        Ok(SecretData {
            entries,
            json: SecretString::from(json),
        })
    }
}

/// Metadata of one version, as returned with a read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VersionMetadata {
    #[serde(default)]
    pub version: i64,
    #[serde(default)]
    pub created_time: String,
    #[serde(default)]
    pub deletion_time: String,
    #[serde(default)]
    pub destroyed: bool,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub custom_metadata: BTreeMap<String, String>,
    /// A string version id, for stores whose versions are not numbers (AWS, Azure).
    #[serde(skip)]
    pub version_id: String,
    /// AWS staging labels of the version (`AWSCURRENT`, `AWSPREVIOUS`, ...).
    #[serde(skip)]
    pub stages: Vec<String>,
}

impl VersionMetadata {
    /// The version's id: the store's string id, or Vault's number as text.
    pub fn id(&self) -> String {
        if self.version_id.is_empty() {
            self.version.to_string()
        } else {
            self.version_id.clone()
        }
    }

    /// The version's number where the store numbers its versions (Vault).
    pub fn number(&self) -> Option<i64> {
        self.version_id.is_empty().then_some(self.version)
    }

    /// How messages name this version: `version 3`, `version 1a2b… (AWSCURRENT)`.
    pub fn label(&self) -> String {
        if self.stages.is_empty() {
            format!("version {}", self.id())
        } else {
            format!("version {} ({})", self.id(), self.stages.join(", "))
        }
    }
}

/// The body of `GET <mount>/data/<path>`.
#[derive(Debug, Deserialize)]
pub struct ReadBody {
    pub data: Option<ReadData>,
}

/// `data` of a read: the secret and its version's metadata.
#[derive(Debug, Deserialize)]
pub struct ReadData {
    pub data: Option<SecretData>,
    pub metadata: Option<VersionMetadata>,
}

/// One version of a KV v2 secret.
#[derive(Debug)]
pub struct KvSecret {
    pub data: SecretData,
    pub metadata: VersionMetadata,
}

/// One entry of the metadata endpoint's `versions` map.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VersionState {
    #[serde(default)]
    pub deletion_time: String,
    #[serde(default)]
    pub destroyed: bool,
    /// When the version was written (RFC 3339), where the store lists it.
    #[serde(default)]
    pub created_time: String,
    /// AWS staging labels; Azure: `enabled` / `disabled` and `expired`.
    #[serde(skip)]
    pub stages: Vec<String>,
}

impl VersionState {
    /// Neither deleted nor destroyed.
    pub fn is_live(&self) -> bool {
        self.deletion_time.is_empty() && !self.destroyed
    }
}

/// The body of `GET <mount>/metadata/<path>` (`data` part). Holds no secret values.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KvMetadata {
    #[serde(default)]
    pub current_version: i64,
    #[serde(default)]
    pub oldest_version: i64,
    #[serde(default)]
    pub created_time: String,
    #[serde(default)]
    pub updated_time: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub custom_metadata: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub versions: BTreeMap<String, VersionState>,
    /// The current version's id where versions are not numbered (AWS, Azure).
    #[serde(skip)]
    pub current_version_id: String,
}

impl KvMetadata {
    /// The newest live version older than `version`, if any.
    pub fn previous_live(&self, version: i64) -> Option<i64> {
        self.versions
            .iter()
            .filter_map(|(v, state)| Some((v.parse::<i64>().ok()?, state)))
            .filter(|(v, state)| *v < version && state.is_live())
            .map(|(v, _)| v)
            .max()
    }
}

#[derive(Debug, Deserialize)]
pub struct MetadataBody {
    pub data: Option<KvMetadata>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_data_keeps_strings_and_encodes_other_values_as_json() {
        let body = br#"{"data":{"data":{"client_id":"abc","n":3,"o":{"x":[1,true]},"nul":null},
            "metadata":{"version":4,"created_time":"2026-01-01T00:00:00Z","custom_metadata":null,
            "deletion_time":"","destroyed":false}}}"#;
        let read: ReadBody = serde_json::from_slice(body).unwrap();
        let data = read.data.unwrap();
        let secret = data.data.unwrap();
        assert_eq!(secret.get("client_id").unwrap().expose_secret(), "abc");
        assert_eq!(secret.get("n").unwrap().expose_secret(), "3");
        assert_eq!(
            secret.get("o").unwrap().expose_secret(),
            r#"{"x":[1,true]}"#
        );
        assert_eq!(secret.get("nul").unwrap().expose_secret(), "null");
        let whole: serde_json::Value = serde_json::from_str(secret.json().expose_secret()).unwrap();
        assert_eq!(whole["n"], 3);
        assert_eq!(data.metadata.unwrap().version, 4);
    }

    #[test]
    fn debug_shows_key_names_only() {
        let s: SecretData = serde_json::from_str(r#"{"client_secret":"hunter2"}"#).unwrap();
        let printed = format!("{s:?}");
        assert!(
            printed.contains("client_secret") && !printed.contains("hunter2"),
            "{printed}"
        );
    }

    #[test]
    fn previous_live_skips_deleted_and_destroyed_versions() {
        let md: KvMetadata = serde_json::from_str(
            r#"{"current_version":5,"versions":{
              "1":{"deletion_time":"","destroyed":false},
              "2":{"deletion_time":"","destroyed":true},
              "3":{"deletion_time":"2026-01-01T00:00:00Z","destroyed":false},
              "4":{"deletion_time":"","destroyed":false},
              "5":{"deletion_time":"","destroyed":false}}}"#,
        )
        .unwrap();
        assert_eq!(md.previous_live(5), Some(4));
        assert_eq!(md.previous_live(4), Some(1));
        assert_eq!(md.previous_live(1), None);
    }
}
