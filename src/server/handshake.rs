//! The go-plugin handshake: the environment Terraform sets for the plugin and the single line
//! the plugin answers with on stdout.

use base64::Engine;

/// The cookie Terraform sets so a provider knows it was launched as a plugin.
pub(crate) const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
/// Its value, fixed by Terraform.
pub(crate) const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// The plugin protocol major version we speak.
pub(crate) const PROTOCOL_VERSION: u32 = 6;

/// Why the process cannot serve as a plugin.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// Started by a person rather than by Terraform.
    #[error(
        "This binary is a plugin. These are not meant to be executed directly.\n\
         Please execute the program that consumes these plugins, which will\n\
         load any plugins automatically.\n\
         (To run the provider by hand for debugging, use --debug.)"
    )]
    NotLaunchedByTerraform,
    /// Terraform offered only protocol versions we do not speak.
    #[error(
        "Terraform offered plugin protocol versions {offered:?}, but this provider speaks only \
         version 6 (Terraform >= 1.10 or OpenTofu >= 1.11 is required)"
    )]
    UnsupportedProtocol {
        /// The versions Terraform offered.
        offered: String,
    },
}

/// What Terraform asked for, read from the environment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PluginEnv {
    /// Terraform's client certificate (PEM) when AutoMTLS is on.
    pub(crate) client_cert_pem: Option<String>,
    /// Where to put the unix socket, if Terraform says.
    pub(crate) socket_dir: Option<String>,
}

impl PluginEnv {
    /// Reads and checks the handshake environment through `var`.
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, HandshakeError> {
        if var(MAGIC_COOKIE_KEY).as_deref() != Some(MAGIC_COOKIE_VALUE) {
            return Err(HandshakeError::NotLaunchedByTerraform);
        }
        // The list comes from iterating a Go map, so its order is random; absent means "any".
        if let Some(offered) = var("PLUGIN_PROTOCOL_VERSIONS") {
            let speaks_ours = offered
                .split(',')
                .any(|v| v.trim().parse::<u32>() == Ok(PROTOCOL_VERSION));
            if !speaks_ours {
                return Err(HandshakeError::UnsupportedProtocol { offered });
            }
        }
        Ok(PluginEnv {
            client_cert_pem: var("PLUGIN_CLIENT_CERT").filter(|s| !s.trim().is_empty()),
            socket_dir: var("PLUGIN_UNIX_SOCKET_DIR").filter(|s| !s.is_empty()),
        })
    }
}

/// The handshake line: `CORE|APP|NETWORK|ADDRESS|PROTOCOL|SERVERCERT`, where the certificate
/// is DER in standard base64 without padding (empty when TLS is off).
pub(crate) fn handshake_line(socket_path: &str, server_cert_der: Option<&[u8]>) -> String {
    let cert = server_cert_der
        .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
        .unwrap_or_default();
    format!("1|{PROTOCOL_VERSION}|unix|{socket_path}|grpc|{cert}\n")
}

/// The `TF_REATTACH_PROVIDERS` value for debug mode. `Test: true` makes Terraform treat the
/// process as unmanaged (no Shutdown, no kill) and negotiate protocol 6 correctly.
pub(crate) fn reattach_json(address: &str, pid: u32, socket_path: &str) -> String {
    serde_json::json!({
        address: {
            "Protocol": "grpc",
            "ProtocolVersion": PROTOCOL_VERSION,
            "Pid": pid,
            "Test": true,
            "Addr": {"Network": "unix", "String": socket_path},
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn cookie_is_required() {
        assert_eq!(
            PluginEnv::from_vars(env(&[])),
            Err(HandshakeError::NotLaunchedByTerraform)
        );
        assert_eq!(
            PluginEnv::from_vars(env(&[(MAGIC_COOKIE_KEY, "wrong")])),
            Err(HandshakeError::NotLaunchedByTerraform)
        );
        let msg = HandshakeError::NotLaunchedByTerraform.to_string();
        assert!(msg.starts_with("This binary is a plugin."), "{msg}");
    }

    #[test]
    fn protocol_6_is_found_in_any_order() {
        for offered in ["5,6", "6,5", "6", " 5 , 6 "] {
            let got = PluginEnv::from_vars(env(&[
                (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
                ("PLUGIN_PROTOCOL_VERSIONS", offered),
            ]));
            assert!(got.is_ok(), "{offered}");
        }
        let got = PluginEnv::from_vars(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "4,5"),
        ]));
        assert_eq!(
            got,
            Err(HandshakeError::UnsupportedProtocol {
                offered: "4,5".into()
            })
        );
    }

    #[test]
    fn client_cert_and_socket_dir_are_read() {
        let got = PluginEnv::from_vars(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_CLIENT_CERT", "-----BEGIN CERTIFICATE-----"),
            ("PLUGIN_UNIX_SOCKET_DIR", "/run/x"),
        ]))
        .unwrap();
        assert_eq!(
            got.client_cert_pem.as_deref(),
            Some("-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(got.socket_dir.as_deref(), Some("/run/x"));
    }

    #[test]
    fn handshake_line_uses_unpadded_standard_base64() {
        // 4 bytes would need "==" padding in padded base64; "+/" only appear in the standard alphabet.
        let line = handshake_line("/tmp/p.sock", Some(&[0xfb, 0xff, 0x01, 0x02]));
        assert_eq!(line, "1|6|unix|/tmp/p.sock|grpc|+/8BAg\n");
        assert_eq!(handshake_line("/s", None), "1|6|unix|/s|grpc|\n");
    }

    #[test]
    fn reattach_value_marks_the_process_as_test() {
        let v: serde_json::Value = serde_json::from_str(&reattach_json(
            "registry.terraform.io/ccsecrets/ccsecrets",
            42,
            "/s",
        ))
        .unwrap();
        let p = &v["registry.terraform.io/ccsecrets/ccsecrets"];
        assert_eq!(p["Test"], true);
        assert_eq!(p["ProtocolVersion"], 6);
        assert_eq!(p["Pid"], 42);
        assert_eq!(p["Addr"]["Network"], "unix");
    }
}
