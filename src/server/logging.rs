//! Logs as hclog JSON lines on stderr, the format go-plugin parses for Terraform's log:
//! `@level`, `@message`, `@timestamp` (six fractional digits) and `@module`, all strings.
//! Only this crate's own events are written, so no dependency can put a request body there.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The crate whose events are logged (the library's name).
const OWN_TARGET: &str = "ccsecrets";
/// `@module` as Terraform displays it.
const MODULE: &str = "provider.ccsecrets";

/// The log level from `TF_LOG_PROVIDER`, falling back to `TF_LOG`, as Terraform reads them.
/// Unset or `OFF` means nothing is written (Terraform would drop it anyway); an unknown value
/// means TRACE, as in Terraform.
pub(crate) fn level_from_env(var: impl Fn(&str) -> Option<String>) -> LevelFilter {
    let raw = var("TF_LOG_PROVIDER")
        .filter(|v| !v.is_empty())
        .or_else(|| var("TF_LOG").filter(|v| !v.is_empty()));
    match raw.map(|v| v.trim().to_ascii_uppercase()).as_deref() {
        None | Some("OFF") => LevelFilter::OFF,
        Some("ERROR") => LevelFilter::ERROR,
        Some("WARN") => LevelFilter::WARN,
        Some("INFO") => LevelFilter::INFO,
        Some("DEBUG") => LevelFilter::DEBUG,
        Some(_) => LevelFilter::TRACE,
    }
}

/// A tracing layer that writes hclog JSON lines to stderr.
#[derive(Debug)]
pub(crate) struct HclogLayer {
    max: LevelFilter,
}

impl HclogLayer {
    pub(crate) fn new(max: LevelFilter) -> Self {
        HclogLayer { max }
    }
}

fn level_name(level: &Level) -> &'static str {
    // hclog accepts trace|debug|info|warn|error; "warning" would fall back to a raw line.
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// Collects an event's fields: `message` separately, the rest as JSON values.
#[derive(Default)]
struct Fields {
    message: String,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.rest.insert(field.name().to_owned(), value.into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().to_owned(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.rest
                .insert(field.name().to_owned(), format!("{value:?}").into());
        }
    }
}

/// One hclog line for an event (without the newline).
pub(crate) fn format_line(
    level: &Level,
    message: &str,
    fields: serde_json::Map<String, serde_json::Value>,
    at: SystemTime,
) -> String {
    let mut obj = fields;
    // The reserved keys must be strings: go-plugin asserts their type unchecked.
    obj.insert("@level".into(), level_name(level).into());
    obj.insert("@message".into(), message.into());
    obj.insert("@module".into(), MODULE.into());
    obj.insert(
        "@timestamp".into(),
        humantime::format_rfc3339_micros(at).to_string().into(),
    );
    serde_json::Value::Object(obj).to_string()
}

fn own(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    target == OWN_TARGET
        || target
            .strip_prefix(OWN_TARGET)
            .is_some_and(|rest| rest.starts_with("::"))
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        own(metadata) && *metadata.level() <= self.max
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !own(meta) || *meta.level() > self.max {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = format_line(
            meta.level(),
            &fields.message,
            fields.rest,
            SystemTime::now(),
        );
        line.push('\n');
        // One write per line so concurrent events never interleave inside a line.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }
}

/// Installs the hclog layer as the global subscriber with the level Terraform asked for.
pub(crate) fn init() {
    use tracing_subscriber::layer::SubscriberExt;
    let level = level_from_env(|k| std::env::var(k).ok());
    let subscriber = tracing_subscriber::registry().with(HclogLayer::new(level));
    // Fails only if a subscriber is already set (e.g. in tests); keeping that one is right.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn level_follows_terraform_rules() {
        let case = |provider: Option<&str>, core: Option<&str>| {
            level_from_env(|k| match k {
                "TF_LOG_PROVIDER" => provider.map(str::to_owned),
                "TF_LOG" => core.map(str::to_owned),
                _ => None,
            })
        };
        assert_eq!(case(None, None), LevelFilter::OFF);
        assert_eq!(case(None, Some("debug")), LevelFilter::DEBUG);
        assert_eq!(case(Some("WARN"), Some("TRACE")), LevelFilter::WARN);
        assert_eq!(case(Some("off"), Some("TRACE")), LevelFilter::OFF);
        assert_eq!(case(None, Some("JSON")), LevelFilter::TRACE);
        assert_eq!(case(Some(""), Some("info")), LevelFilter::INFO);
    }

    #[test]
    fn line_has_string_reserved_keys_and_microsecond_timestamp() {
        let at = UNIX_EPOCH + Duration::from_micros(1_744_192_800_123_456);
        let mut fields = serde_json::Map::new();
        fields.insert("type_name".into(), "ccsecrets_genesys_token".into());
        fields.insert("@level".into(), 3.into()); // must be overwritten, never a number
        let line = format_line(&Level::WARN, "opened", fields, at);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["@level"], "warn");
        assert_eq!(v["@message"], "opened");
        assert_eq!(v["@module"], "provider.ccsecrets");
        assert_eq!(v["@timestamp"], "2025-04-09T10:00:00.123456Z");
        assert_eq!(v["type_name"], "ccsecrets_genesys_token");
    }

    #[test]
    fn only_this_crates_targets_are_logged() {
        use tracing::callsite::Identifier;
        use tracing::metadata::Kind;
        struct Cs;
        impl tracing::Callsite for Cs {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!()
            }
        }
        static CS: Cs = Cs;
        let meta = |target: &'static str| {
            Metadata::new(
                "e",
                target,
                Level::INFO,
                None,
                None,
                None,
                tracing::field::FieldSet::new(&[], Identifier(&CS)),
                Kind::EVENT,
            )
        };
        assert!(own(&meta("ccsecrets")));
        assert!(own(&meta("ccsecrets::vault")));
        assert!(!own(&meta("ccsecrets_other")));
        assert!(!own(&meta("reqwest::connect")));
        assert!(!own(&meta("hyper")));
    }
}
